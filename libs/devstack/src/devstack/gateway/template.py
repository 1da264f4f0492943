"""The Go-template subset of Traefik's file provider that the native gateway renders.

Traefik runs the whole dynamic file through Go's ``text/template`` with the sprig functions
before parsing the YAML. The native gateway supports exactly one shape, which is enough to
point one file at compose hostnames or local ports::

    {{ env "NAME" }}
    {{ env "NAME" | default "value" }}

Anything else between double braces is refused and named, rather than rendered differently
from Traefik.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# Strings are plain double-quoted Go literals without escapes: nothing here needs them.
_SUPPORTED = re.compile(
    r'\s*env\s+"(?P<name>[^"\\]*)"\s*(?:\|\s*default\s+"(?P<default>[^"\\]*)"\s*)?',
)
_SUBSET = '{{ env "NAME" }} optionally piped into default "value"'


class TemplateError(ValueError):
    """The file uses a template construct the native gateway does not render."""


def render_template(text: str, env: Mapping[str, str]) -> str:
    """Render the supported subset with values from ``env``, as sprig would.

    Like sprig, ``env`` of an unset variable is the empty string, and ``default`` replaces an
    empty value, so an exported-but-empty variable also falls back to the default.
    """
    pieces: list[str] = []
    position = 0
    for match in _ACTION.finditer(text):
        _refuse_unterminated(text, position, match.start())
        pieces.append(text[position : match.start()])
        pieces.append(_evaluate(text, match, env))
        position = match.end()
    _refuse_unterminated(text, position, len(text))
    pieces.append(text[position:])
    return "".join(pieces)


def _evaluate(text: str, match: re.Match[str], env: Mapping[str, str]) -> str:
    supported = _SUPPORTED.fullmatch(match.group(1))
    if supported is None:
        raise TemplateError(
            f"line {_line(text, match.start())}: template construct {match.group(0)!r} "
            f"is not supported by the native gateway (only {_SUBSET})"
        )
    value = env.get(supported.group("name"), "")
    default = supported.group("default")
    return default if value == "" and default is not None else value


def _refuse_unterminated(text: str, start: int, end: int) -> None:
    opening = text.find("{{", start, end)
    if opening != -1:
        raise TemplateError(f"line {_line(text, opening)}: unterminated template action '{{{{'")


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1
