"""The services' test kit, kept apart from servicekit so the runtime kit never needs pytest.

A service's `tests/conftest.py` calls `prepare_environment("items")` before it imports the
service (its settings read the environment at import), enables the fixtures with
`pytest_plugins = ["servicekit_testing.plugin"]` and provides two of them, `service_app`
and `service_dir`, from its own app and folder with `service_fixtures`. Test modules import
the helpers below.
"""

from servicekit_testing.environment import prepare_environment
from servicekit_testing.migrations import alembic_config, migrations_round_trip
from servicekit_testing.service import service_fixtures
from servicekit_testing.tokens import TEST_PASSWORD, Headers, TokenFactory, bearer

__all__ = [
    "TEST_PASSWORD",
    "Headers",
    "TokenFactory",
    "alembic_config",
    "bearer",
    "migrations_round_trip",
    "prepare_environment",
    "service_fixtures",
]
