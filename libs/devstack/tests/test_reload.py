"""A running stack picks up an edited route within seconds, restarting that service alone.

The stack runs from a copy of the services and servicekit (`StackConfig.source_root`), so the
test edits files of its own, never the checkout's.
"""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import REPO_ROOT
from devstack.provision import SERVICES
from devstack.reload import Reloader, compile_error
from devstack.stack import KIT_SOURCE, Stack, StackConfig
from devstack.standby import READY

PROBE = "/api/v1/items/-/reload-probe"
PROBE_ROUTE = """

@router.get("/-/reload-probe", include_in_schema=False)
async def reload_probe() -> dict[str, str]:
    return {"served": "after the edit"}
"""
WITHIN = 60.0  # seconds; generous for a loaded machine, the figure is printed


@pytest.fixture(scope="module")
def source_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "tests")
    shutil.copytree(REPO_ROOT / "services", root / "services", ignore=ignore)
    shutil.copytree(REPO_ROOT / KIT_SOURCE, root / KIT_SOURCE, ignore=ignore)
    return root


@pytest.fixture(scope="module")
def stack(source_root: Path) -> Iterator[Stack]:
    stack = Stack(StackConfig.isolated(source_root=source_root, reload=True))
    stack.start()
    reloader = Reloader(stack)
    reloader.start()
    try:
        yield stack
    finally:
        reloader.stop()
        stack.stop()


def pids(stack: Stack) -> dict[str, int]:
    return {
        name: process.process.pid
        for name, process in stack.processes.items()
        if process.process is not None
    }


def wait_for(condition: object, what: str, within: float = WITHIN) -> float:
    """Seconds until `condition()` holds; fails naming `what` after `within`."""
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - began < within, f"no {what} after {within:.0f}s"
        time.sleep(0.1)
    return time.monotonic() - began


def probe(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.config.gateway_url}{PROBE}", timeout=5)


def save(path: Path, text: str) -> None:
    """As editors save: the whole new file at once (a watcher never sees half of it)."""
    draft = path.with_suffix(".draft")
    draft.write_text(text)
    draft.replace(path)


def log_of(stack: Stack, name: str) -> str:
    return (stack.logs_dir / f"{name}.log").read_text(errors="replace")


def warm_standbys(stack: Stack, name: str) -> int:
    return log_of(stack, name).count(READY)


def test_an_edited_route_is_served_through_the_gateway_and_only_its_service_restarts(
    stack: Stack, source_root: Path
) -> None:
    wait_for(lambda: warm_standbys(stack, "items") == 1, "warm standby", within=120)
    before = pids(stack)
    assert probe(stack).status_code != 200
    routes = source_root / "services/items/src/items/routes.py"
    save(routes, routes.read_text() + PROBE_ROUTE)

    seconds = wait_for(lambda: probe(stack).status_code == 200, "new route")
    print(f"edit to new behaviour through the gateway: {seconds:.1f}s")
    assert probe(stack).json() == {"served": "after the edit"}
    # The new process answers a moment before the reloader has swapped it in and said so.
    wait_for(lambda: "items restarted in" in log_of(stack, "items"), "restart noted", within=30)
    after = pids(stack)
    assert after["items"] != before["items"]
    assert {name: pid for name, pid in after.items() if name != "items"} == {
        name: pid for name, pid in before.items() if name != "items"
    }
    assert "routes.py changed: restarting items" in log_of(stack, "items")
    for name in set(SERVICES) - {"items"}:
        assert "restarting" not in log_of(stack, name)


def test_a_syntax_error_is_shown_and_the_running_process_keeps_serving(
    stack: Stack, source_root: Path
) -> None:
    routes = source_root / "services/items/src/items/routes.py"
    working = routes.read_text()
    if PROBE_ROUTE not in working:  # run alone
        working += PROBE_ROUTE
        save(routes, working)
        wait_for(lambda: probe(stack).status_code == 200, "new route")
    before = pids(stack)

    save(routes, working + "\ndef unfinished(:\n")
    wait_for(lambda: "not restarted: SyntaxError" in log_of(stack, "items"), "syntax error shown")
    assert f"{routes}, line" in log_of(stack, "items")
    assert pids(stack) == before
    assert probe(stack).json() == {"served": "after the edit"}  # the code it had
    assert stack.dead_processes() == []

    wait_for(lambda: warm_standbys(stack, "items") == 2, "warm standby", within=120)
    save(routes, working)  # fixed: now it restarts
    began = time.monotonic()
    wait_for(lambda: pids(stack)["items"] != before["items"], "restart after the fix")
    wait_for(lambda: probe(stack).status_code == 200, "route after the fix")
    print(f"fix to new process serving through the gateway: {time.monotonic() - began:.1f}s")
    assert {name: pid for name, pid in pids(stack).items() if name != "items"} == {
        name: pid for name, pid in before.items() if name != "items"
    }


def test_compile_error_names_the_file_and_line(tmp_path: Path) -> None:
    module = tmp_path / "broken.py"
    module.write_text("x = 1\nif x\n")
    assert compile_error(module) == f"SyntaxError in {module}, line 2: expected ':'"
    module.write_text("x = 1\n")
    assert compile_error(module) is None


def test_a_module_that_fails_at_import_is_reported_and_the_next_save_brings_it_back(
    stack: Stack, source_root: Path
) -> None:
    routes = source_root / "services/items/src/items/routes.py"
    working = routes.read_text()
    before = pids(stack)

    save(routes, working + "\nraise RuntimeError('broken at import')\n")
    wait_for(lambda: "items did not start" in log_of(stack, "items"), "failure shown")
    assert "RuntimeError: broken at import" in log_of(stack, "items")
    assert {name: pid for name, pid in pids(stack).items() if name != "items"} == {
        name: pid for name, pid in before.items() if name != "items"
    }

    save(routes, working)
    wait_for(
        lambda: httpx.get(f"{stack.config.gateway_url}/api/v1/items/health").status_code == 200,
        "items back",
    )
    assert stack.dead_processes() == []
