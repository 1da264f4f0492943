"""The native stack behind `make dev` and the test suites, run from this checkout.

`REPO_ROOT` is that checkout: devstack is a development tool installed in editable mode, and
it runs the services, migrations and gateway files found beside it.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
