"""Field types that refuse what PostgreSQL or JSON cannot hold, as a 422 instead of a 500."""

from typing import Annotated

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


def bounded_text(min_length: int = 0, max_length: int | None = None, *, strip: bool = False):  # type: ignore[no-untyped-def]
    """A `Text` with length bounds, e.g. `Title = bounded_text(1, 200)`."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=strip),
        AfterValidator(_storable),
    ]
