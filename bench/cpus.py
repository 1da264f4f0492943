"""Keep the server under test and the load generator on cores of their own."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_ALL = os.sched_getaffinity(0)
#: With two cores or more: the server measured runs on the first, wrk on the last, so
#: neither steals the other's time and runs compare per core. On one core: no pinning.
SERVER_CPU: int | None = min(_ALL) if len(_ALL) > 1 else None
LOAD_CPU: int | None = max(_ALL) if len(_ALL) > 1 else None


def _set(pid: int, cpus: set[int]) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():  # every thread, not just the main one
        os.sched_setaffinity(int(task.name), cpus)


@contextmanager
def server_core(pid: int) -> Iterator[None]:
    """`pid` on SERVER_CPU alone while the block runs, then back on every core."""
    with pinned({pid: SERVER_CPU}):
        yield


@contextmanager
def pinned(placement: Mapping[int, int | None]) -> Iterator[None]:
    """Each pid on its core alone (None: left alone) while the block runs, then back."""
    placed = {pid: cpu for pid, cpu in placement.items() if cpu is not None}
    for pid, cpu in placed.items():
        _set(pid, {cpu})
    try:
        yield
    finally:
        for pid in placed:
            _set(pid, _ALL)
