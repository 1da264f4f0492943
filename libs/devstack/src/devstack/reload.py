"""Restart a service of the running stack when its code, or servicekit's, changes.

What `uvicorn --reload` does for one app, for the stack: only the service whose files changed
restarts (all four for servicekit, which each runs), and the others keep their processes. A
file that does not compile stops the restart: the running process keeps serving the code it
has, and the error is shown until a save fixes it. A service that compiles but fails to start
(an import error) is reported and restarted at the next save, without stopping the stack.
watchfiles (uvicorn's own reloader) tells us what changed; each service's next process waits
warmed up (devstack.standby), so a restart costs about a second.
"""

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import watchfiles

from devstack.provision import SERVICES
from devstack.stack import KIT_SOURCE, Stack

__all__ = ["Reloader", "compile_error"]


def compile_error(path: Path) -> str | None:
    """What `path` cannot compile for (file, line, message), None when it compiles."""
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        return None  # a deleted module is the import's business
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        where = f", line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        return f"{type(exc).__name__} in {path}{where}: {message}"
    return None


class Reloader:
    """Watches the stack's source root from a thread of its own; `start()`, `stop()`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        root = stack.config.source_root
        self.owners: dict[Path, tuple[str, ...]] = {
            root / "services" / name / "src": (name,) for name in SERVICES
        }
        self.owners[root / KIT_SOURCE] = SERVICES
        #: Services waiting for a restart (a file of theirs does not compile yet).
        self.pending: set[str] = set()
        #: Files that did not compile at the last look.
        self.broken: set[Path] = set()
        #: Services whose new process failed to start; the stack runs on without them.
        self.failed: set[str] = set()
        #: Services being restarted right now.
        self.restarting: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="devstack-reload", daemon=True)

    def start(self) -> None:
        """Watch, with each service's next process warming up (devstack.standby)."""
        for name in SERVICES:
            self.stack.processes[name].warm_standby(self.stack.standby_argv(name))
        self._thread.start()

    def excused(self) -> set[str]:
        """Services whose process may be down without that being a crash of the stack."""
        return self.failed | self.restarting

    def stop(self) -> None:
        """Stop watching; returns once a restart under way is over (then stop the stack)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _watch(self) -> None:
        for changes in watchfiles.watch(
            *self.owners,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=self._stop,
            raise_interrupt=False,
        ):
            self.apply(Path(path) for _, path in changes)

    def owners_of(self, path: Path) -> tuple[str, ...]:
        for top, names in self.owners.items():
            if path.is_relative_to(top):
                return names
        return ()

    def apply(self, changed: Iterable[Path]) -> None:
        """Restart the services that `changed` files belong to, if every file compiles."""
        changed = set(changed)
        for path in changed:
            self.pending.update(self.owners_of(path))
        for path in changed | self.broken:
            if error := compile_error(path):
                self.broken.add(path)
                for name in self.owners_of(path):
                    self.stack.processes[name].note(
                        f"not restarted: {error}; it still runs the code it had"
                    )
            else:
                self.broken.discard(path)
        if self.broken:
            return
        names = [name for name in SERVICES if name in self.pending]
        self.pending.clear()
        what = ", ".join(sorted({path.name for path in changed}))
        if names and not self._stop.is_set():
            # In parallel: a servicekit change restarts all four in the time of one.
            with ThreadPoolExecutor(len(names), thread_name_prefix="devstack-restart") as pool:
                list(pool.map(lambda name: self._restart(name, what), names))

    def _restart(self, name: str, what: str) -> None:
        process = self.stack.processes[name]
        process.note(f"{what} changed: restarting {name}")
        began = time.monotonic()
        self.restarting.add(name)
        try:
            self.stack.reload_service(name)
        except Exception as exc:  # the watcher must outlive any failed restart
            self.failed.add(name)
            process.note(f"{name} did not start ({exc}); waiting for the next change")
            return
        finally:
            self.restarting.discard(name)
        self.failed.discard(name)
        process.note(f"{name} restarted in {time.monotonic() - began:.1f}s")
