"""Go durations, read and written the way Traefik does.

Traefik's duration options (paerser ``types.Duration``) accept either a bare integer, meaning
seconds, or a Go duration string such as ``"1s"``, ``"250ms"`` or ``"1m30s"``. Its rate limiter
also reports waits with Go's ``time.Duration.String()`` (the ``X-Retry-In`` header).
"""

from __future__ import annotations

import re

_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Return seconds for a Traefik duration (an integer of seconds or a Go duration string).

    Negative durations are refused: no option the gateway supports gives them a meaning.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a duration (use seconds or a string such as '1s')")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    text = value.strip()
    if text.isdigit():
        return float(text)
    nanoseconds = 0.0
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        nanoseconds += float(match.group(1)) * _NANOSECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError(f"{value!r} is not a Go duration such as '1s', '250ms' or '1m30s'")
    return nanoseconds / 1_000_000_000


def format_go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String()``: ``"100ms"``, ``"1.5s"``, ``"1m0.5s"``."""
    nanoseconds = int(seconds * 1_000_000_000)
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    nanoseconds = abs(nanoseconds)
    if nanoseconds < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanoseconds >= size:
                return sign + _decimal(nanoseconds, size) + unit
    hours, rest = divmod(nanoseconds, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return sign + text + _decimal(rest, 1_000_000_000) + "s"


def _decimal(value: int, unit: int) -> str:
    """``value / unit`` with the fraction's trailing zeros dropped, as Go prints it."""
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")
