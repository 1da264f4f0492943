"""`python -m devstack.standby -m uvicorn <app> ...`: a service's next process, warmed up.

Most of a service's start is spent importing the libraries it uses (SQLAlchemy, FastAPI,
pydantic: seconds of CPU), which an edit of our code never changes. For a service being
edited, the reloader keeps one of these waiting: it imports those libraries at once, then
waits for a line on stdin, and only then imports our code, as it is at that moment, and runs
uvicorn with the arguments it was given. A restart then costs the import of our code alone.
"""

import contextlib
import importlib
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires

import uvicorn

#: What it says in the service's log once warm.
READY = "devstack: the next process is warm and waits for a change"
#: Ours: edited, so imported only on the word (what a service and servicekit import anyway).
WORKSPACE = {"servicekit"}


def libraries(distribution: str) -> set[str]:
    """Distributions `distribution` needs, transitively, leaving out our workspace's."""
    found: set[str] = set()
    todo = [distribution]
    while todo:
        try:
            requirements = requires(todo.pop()) or []
        except PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            name = match.group(0).lower().replace("_", "-") if match else ""
            if name and name not in found:
                found.add(name)
                todo.append(name)
    return found


def warm_up(package: str) -> None:
    """Import every top-level module of the libraries `package` needs."""
    wanted = libraries(package) - WORKSPACE - {package}
    for module, distributions in packages_distributions().items():
        names = {name.lower().replace("_", "-") for name in distributions}
        if names & wanted and module.isidentifier() and not module.startswith("_"):
            with contextlib.suppress(Exception):  # a library's optional parts may be missing
                importlib.import_module(module)


def main() -> None:
    args = sys.argv[1:]
    if args[:2] != ["-m", "uvicorn"] or len(args) < 3:
        sys.exit("usage: python -m devstack.standby -m uvicorn <module:app> [uvicorn options]")
    warm_up(args[2].partition(".")[0])
    print(READY, flush=True)
    if not sys.stdin.readline():  # no word: the stack is going away
        return
    sys.argv = ["uvicorn", *args[2:]]
    uvicorn.main()


if __name__ == "__main__":
    main()
