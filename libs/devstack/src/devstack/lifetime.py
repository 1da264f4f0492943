"""Child processes that cannot outlive the process that started them, however it dies.

A clean stop (Ctrl-C, SIGTERM) stops the children one by one; a SIGKILL, an out-of-memory kill
or a crashed terminal leaves no time for that. Linux then sends each child its parent-death
signal (`PR_SET_PDEATHSIG`), set in the child between fork and exec. Linux sends it when the
*thread* that forked the child ends, not the process: so every child here is forked by one
thread that lives as long as the process, whichever thread asks (the reload watcher, a test's
`asyncio.to_thread`, whose worker threads end with their event loop).
"""

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

__all__ = ["popen", "run"]

_PR_SET_PDEATHSIG = 1
# Resolved here, in the parent: the forked child only calls it.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

_Job = tuple[Future[subprocess.Popen[Any]], Sequence[str | Path], dict[str, Any]]
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_forker: threading.Thread | None = None
_forker_lock = threading.Lock()


def _die_with_parent(parent: int, death_signal: signal.Signals) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child, after Popen's setuid (which would clear it)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        # The parent may have died between fork and prctl: no signal would ever come then.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _fork_forever() -> None:
    while True:
        future, argv, kwargs = _jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(subprocess.Popen(argv, **kwargs))  # noqa: S603 - our argv
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)


def popen(
    argv: Sequence[str | Path],
    *,
    death_signal: signal.Signals = signal.SIGKILL,
    **kwargs: Any,
) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **kwargs)` whose child gets `death_signal` when we die.

    SIGKILL suits stateless children; a server with data to keep gets the signal that makes
    it shut down fast but cleanly (SIGINT for PostgreSQL).
    """
    global _forker
    kwargs["preexec_fn"] = _die_with_parent(os.getpid(), death_signal)
    with _forker_lock:
        if _forker is None or not _forker.is_alive():
            _forker = threading.Thread(target=_fork_forever, name="devstack-forker", daemon=True)
            _forker.start()
    if threading.current_thread() is _forker:
        return subprocess.Popen(argv, **kwargs)  # noqa: S603 - argv is built by our callers
    future: Future[subprocess.Popen[Any]] = Future()
    _jobs.put((future, argv, kwargs))
    return future.result()


def run(
    argv: Sequence[str | Path], *, death_signal: signal.Signals = signal.SIGKILL, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True)` through `popen`."""
    process = popen(
        argv,
        death_signal=death_signal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    with process:
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
