"""Tables of the items service."""

from servicekit.db import metadata

__all__ = ["metadata"]
