"""Tables of the notifications service."""

from servicekit.db import metadata

__all__ = ["metadata"]
