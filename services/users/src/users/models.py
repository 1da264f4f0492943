"""Tables of the users service."""

from servicekit.db import metadata

__all__ = ["metadata"]
