"""What a service's conftest hands the kit: its app and its folder, as the two fixtures the
plugin asks for (`service_app`, `service_dir`)."""

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI


def service_fixtures(app: FastAPI, folder: Path) -> tuple[Any, Any]:
    """`service_app` and `service_dir` for a conftest to bind under those names."""

    @pytest.fixture(scope="session", name="service_app")
    def service_app() -> FastAPI:
        return app

    @pytest.fixture(scope="session", name="service_dir")
    def service_dir() -> Path:
        return folder

    return service_app, service_dir
