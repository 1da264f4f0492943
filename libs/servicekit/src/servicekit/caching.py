"""HTTP caching rules every answer follows (RFC 9110 §13, RFC 9111): which `Cache-Control` an
answer gets when its route names none, the ETag of a body that has no other validator, and
whether `If-None-Match` names the representation at hand.

Applied per request by `RequestContextMiddleware`, so the work stays a few comparisons (and one
hash of a GET's body when its route made no ETag).
"""

import hashlib

#: Anything holding a token or a secret, every error, and what no user asked for with a token.
NO_STORE = "no-store"
#: Per-user data: a browser may keep it but asks again (with `If-None-Match`) before each use;
#: a shared cache never stores it (the answer depends on `Authorization`).
PRIVATE = "private, no-cache"
#: Public documents (docs pages, OpenAPI): anyone may store them, revalidating before use.
PUBLIC_REVALIDATED = "public, no-cache"

#: What a 304 keeps of the 200 it stands for (RFC 9110 §15.4.5); representation metadata goes.
NOT_MODIFIED_DROPS = (b"content-type", b"content-length", b"content-encoding")


def default_cache_control(*, status: int, authorized: bool) -> str:
    """A route's answer that names no policy: private when a token asked for it, else not stored."""
    if authorized and (200 <= status < 300 or status == 304):
        return PRIVATE
    return NO_STORE


def content_tag(body: bytes) -> str:
    """A strong ETag for exactly these bytes (lists, profiles: answers without a version).

    It runs on every GET, and SHA-1 is hashlib's fastest digest here; it tells versions apart,
    and a collision made on purpose would cost far more than the stale page it could show.
    """
    return f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()[:32]}"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(if_none_match: str, etag: str) -> bool:
    """Whether `If-None-Match` names `etag`: weak comparison, as RFC 9110 §13.1.2 asks for GET."""
    candidates = if_none_match.strip()
    if candidates == "*":
        return True
    current = _opaque(etag.strip())
    return any(_opaque(tag.strip()) == current for tag in candidates.split(","))
