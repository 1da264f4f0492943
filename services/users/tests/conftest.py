"""Fixtures for the users service's tests: a fresh migrated database and a private Redis."""

from servicekit.testing import prepare_environment

prepare_environment("users")  # before anything imports the service: its settings read the env

from servicekit.testing import *  # noqa: E402, F403 - the shared fixtures
