"""Tables of the auth service."""

from servicekit.db import metadata

__all__ = ["metadata"]
