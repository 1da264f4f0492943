"""Request-path handling of a Traefik v3 entry point, before any router sees the request.

Traefik (pkg/server/server_entrypoint_tcp.go and its encodedCharacters filter) processes the
path in this order, and so does the native gateway:

1. reject a ``#`` in the path and the ambiguous encoded characters
   ``%2F %5C %00 %3B %25 %3F %23`` (all rejected by default in current v3) with a bare 400;
2. normalize escapes: decode unreserved characters, upper-case the others;
3. sanitize (``sanitizePath``, on by default): drop ``.``/``..`` segments and duplicate slashes,
   keeping one trailing slash (Go's ``URL.JoinPath``);
4. compute the *routing path*, which rules match: escapes decoded except reserved characters.

The upstream receives the path from step 3, still percent-encoded.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

_DENIED_ESCAPES = (b"%2f", b"%5c", b"%00", b"%3b", b"%25", b"%3f", b"%23")
_HEX = frozenset(string.hexdigits.encode())
_UNRESERVED = frozenset((string.ascii_letters + string.digits + "-._~").encode())
_RESERVED = frozenset(b":/?#[]@!$&'()*+,;=%")
_NOT_RESERVED = frozenset(range(256)) - _RESERVED


class BadRequest(ValueError):
    """Traefik answers these paths with a bare 400."""


@dataclass(frozen=True)
class RequestPath:
    """The two views of a request path the gateway needs."""

    upstream: bytes  # normalized and sanitized, still percent-encoded: sent to the service
    routing: str  # what Path/PathPrefix rules are matched against


def prepare_path(raw_path: bytes) -> RequestPath:
    """Apply Traefik's entry-point path pipeline to the raw request path (no query string)."""
    if b"#" in raw_path:
        raise BadRequest("fragment in the request path")
    lowered = raw_path.lower()
    for escape in _DENIED_ESCAPES:
        if escape in lowered:
            raise BadRequest(f"encoded character {escape.decode().upper()} in the request path")
    normalized = _rewrite_escapes(raw_path, decode=_UNRESERVED)
    sanitized = clean_path(normalized) if normalized.startswith(b"/") else normalized
    routing = _rewrite_escapes(sanitized, decode=_NOT_RESERVED)
    return RequestPath(upstream=sanitized, routing=routing.decode("utf-8", errors="replace"))


def clean_path(path: bytes) -> bytes:
    """Go's ``path.Clean`` for a rooted path, keeping one trailing slash like ``URL.JoinPath``."""
    segments: list[bytes] = []
    for segment in path.split(b"/"):
        if segment in (b"", b"."):
            continue
        if segment == b"..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    cleaned = b"/" + b"/".join(segments)
    if path.endswith(b"/") and not cleaned.endswith(b"/"):
        cleaned += b"/"
    return cleaned


def _rewrite_escapes(path: bytes, decode: frozenset[int]) -> bytes:
    """Decode ``%XX`` escapes whose byte is in ``decode`` and upper-case the rest."""
    result = bytearray()
    index = 0
    while index < len(path):
        if path[index] != ord("%"):
            result.append(path[index])
            index += 1
            continue
        digits = path[index + 1 : index + 3]
        if len(digits) != 2 or not all(digit in _HEX for digit in digits):
            raise BadRequest("invalid percent-encoding in the request path")
        value = int(digits, 16)
        if value in decode:
            result.append(value)
        else:
            result += b"%" + digits.upper()
        index += 3
    return bytes(result)
