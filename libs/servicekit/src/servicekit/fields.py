"""Field types that refuse what PostgreSQL or JSON cannot hold, as a 422 instead of a 500."""

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


#: Use instead of `str` for anything that is stored or echoed.
Text = Annotated[str, AfterValidator(_storable)]

#: Line breaks and tabs, which a multi-line text (a bio, a description) may hold.
_LAYOUT = frozenset("\r\n\t")


def _printable(value: str, *, allowed: frozenset[str]) -> str:
    """Refuse control characters (C0, C1, DEL) and invisible format characters (bidi
    overrides, zero-width joiners): in a mail or a list another person reads, they can
    make one user's text pass for a new line, or a different text, of the platform's."""
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cf"):
            raise ValueError(f"must not contain control characters (U+{ord(char):04X})")
    return value


def _single_line(value: str) -> str:
    return _printable(value, allowed=frozenset())


def _multi_line(value: str) -> str:
    return _printable(value, allowed=_LAYOUT)


def bounded_text(  # type: ignore[no-untyped-def]
    min_length: int = 0,
    max_length: int | None = None,
    *,
    strip: bool = False,
    shown_to_others: bool | Literal["lines"] = False,
):
    """A `Text` with length bounds, e.g. `Title = bounded_text(1, 200)`.

    `shown_to_others=True` (a name, a title) refuses every control character, line breaks
    included; `shown_to_others="lines"` (a bio) allows line breaks and tabs only.
    """
    checks = [AfterValidator(_storable)]
    if shown_to_others:
        checks.append(AfterValidator(_multi_line if shown_to_others == "lines" else _single_line))
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=strip),
        *checks,
    ]
