"""A two-node Docker Swarm on this machine: each node a container running its own dockerd.

The nodes are containers of tests-swarm/node's image on a bridge network of their own, each
engine reachable from here through a socket in a temporary directory (bind-mounted into the
node), so the host's docker CLI drives every node. Everything is named after one run id and
removed by `NestedSwarm.remove()`: node containers with their engines' volumes (and so the
images loaded into them), the network and the socket directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = REPO_ROOT / "deploy" / "swarm" / "stack.yml"
STACK = "platform"
#: What the suite measured (convergence, update, failover), printed at the end of the run.
FIGURES: dict[str, object] = {}
#: Nested engines need most capabilities and no seccomp filter, but not --privileged (refused
#: where CAP_SYS_RESOURCE is missing); the cgroup tree is theirs to create their containers in.
NODE_RUN_OPTIONS = (
    "--cap-add=ALL",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/tmp",
)


def run(
    *argv: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    input: bytes | None = None,
) -> str:
    """Run a command; its stdout, or an AssertionError with its stderr."""
    result = subprocess.run(  # noqa: S603 - fixed docker argv
        argv,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
        )
    return result.stdout.decode()


def wait_until(what: str, check: object, timeout: float, interval: float = 1.0) -> float:
    """Poll `check()` until it is truthy; the seconds it took, or AssertionError naming `what`."""
    started = time.monotonic()
    while True:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Node:
    name: str  # the container's name on this machine
    hostname: str  # the node's name in the swarm
    socket_dir: Path
    address: str = ""

    def docker(self, *argv: str, **kwargs: object) -> str:
        return run("docker", "-H", f"unix://{self.socket_dir}/docker.sock", *argv, **kwargs)  # type: ignore[arg-type]


@dataclass
class NestedSwarm:
    """Two nested engines, node1 the manager (labelled for the data and the gateway), node2 a
    worker holding no database."""

    image: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    host_address: str = ""  # this machine's address on the nodes' network
    nodes: list[Node] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"platform-swarm-{self.run_id}"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def create(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}."))
        run("docker", "network", "create", "--label", f"platform-swarm={self.run_id}", self.prefix)
        self.host_address = run(
            "docker",
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
            self.prefix,
        ).strip()
        for number in (1, 2):
            node = Node(
                f"{self.prefix}-node{number}", f"node{number}", self.workdir / f"node{number}"
            )
            node.socket_dir.mkdir()
            # The engine's data on a volume (overlay2 cannot stack on the node's own overlay).
            run("docker", "volume", "create", "--label", f"platform-swarm={self.run_id}", node.name)
            run(
                "docker",
                "run",
                "--detach",
                "--name",
                node.name,
                "--hostname",
                node.hostname,
                "--label",
                f"platform-swarm={self.run_id}",
                "--network",
                self.prefix,
                "--env",
                f"NODE_NAME={node.name}",
                "--volume",
                f"{node.name}:/var/lib/docker",
                "--volume",
                f"{node.socket_dir}:/run/node",
                *NODE_RUN_OPTIONS,
                self.image,
            )
            node.address = run(
                "docker",
                "inspect",
                "--format",
                f'{{{{(index .NetworkSettings.Networks "{self.prefix}").IPAddress}}}}',
                node.name,
            ).strip()
            self.nodes.append(node)
        for node in self.nodes:
            wait_until(
                f"{node.name}'s engine", lambda n=node: _answers(n), timeout=60, interval=0.5
            )

    def form(self) -> None:
        """node1 initialises the swarm, node2 joins as a worker; node1 gets both labels."""
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.address)
        token = self.manager.docker("swarm", "join-token", "--quiet", "worker").strip()
        self.nodes[1].docker("swarm", "join", "--token", token, f"{self.manager.address}:2377")
        self.manager.docker(
            "node",
            "update",
            "--label-add",
            "platform.data=true",
            "--label-add",
            "platform.edge=true",
            self.manager.hostname,
        )

    def load_images(self, images: Iterable[str], nodes: Iterable[Node]) -> None:
        """docker save once, docker load into the nodes at once (no registry needed)."""
        archive = self.workdir / f"images-{uuid.uuid4().hex[:6]}.tar"
        run("docker", "save", "--output", str(archive), *images, timeout=600)
        loads = [
            subprocess.Popen(  # noqa: S603
                [
                    "docker",
                    "-H",
                    f"unix://{node.socket_dir}/docker.sock",
                    "load",
                    "--quiet",
                    "--input",
                    str(archive),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for node in nodes
        ]
        for load in loads:
            _, stderr = load.communicate(timeout=600)
            assert load.returncode == 0, stderr.decode()
        archive.unlink()

    def deploy(self, env: Mapping[str, str]) -> None:
        self.manager.docker(
            "stack", "deploy", "--detach=true", "--compose-file", str(STACK_FILE), STACK, env=env
        )

    def services(self) -> dict[str, tuple[int, int]]:
        """Each service of the stack: (running tasks, desired tasks)."""
        found = {}
        for line in self.manager.docker(
            "service",
            "ls",
            "--filter",
            f"label=com.docker.stack.namespace={STACK}",
            "--format",
            "{{.Name}} {{.Replicas}}",
        ).splitlines():
            name, replicas = line.split()[:2]
            running, desired = replicas.split("/")
            found[name.removeprefix(f"{STACK}_")] = (int(running), int(desired))
        return found

    def converged(self) -> bool:
        services = self.services()
        return bool(services) and all(
            running == desired and desired > 0 for running, desired in services.values()
        )

    def tasks(self, service: str) -> list[dict[str, str]]:
        """The running tasks of a service: id, name and node."""
        output = self.manager.docker(
            "service",
            "ps",
            f"{STACK}_{service}",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
        )
        tasks = [json.loads(line) for line in output.splitlines()]
        return [
            {"id": t["ID"], "name": t["Name"], "node": t["Node"]}
            for t in tasks
            if t["CurrentState"].startswith("Running")
        ]

    def logs(self, service: str, since: str) -> str:
        """The service's log lines since `since`, each prefixed with its task and node. The
        services log on stderr, which `docker service logs` passes on as its own stderr."""
        socket = f"unix://{self.manager.socket_dir}/docker.sock"
        result = subprocess.run(  # noqa: S603
            ["docker", "-H", socket, "service", "logs", "--since", since, f"{STACK}_{service}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout + result.stderr

    def leftovers(self) -> list[str]:
        """What of this swarm still exists on this machine (nothing, after `remove`)."""
        label = f"label=platform-swarm={self.run_id}"
        found = [
            f"{kind} {name}"
            for kind in ("container", "volume", "network")
            for name in run(
                "docker",
                kind,
                "ls",
                *(["--all"] if kind == "container" else []),
                "--quiet",
                "--filter",
                label,
            ).split()
        ]
        if hasattr(self, "workdir") and self.workdir.exists():
            found.append(f"directory {self.workdir}")
        return found

    def remove(self) -> None:
        """Everything this swarm created on this machine, whatever state it is in."""
        label = f"label=platform-swarm={self.run_id}"
        containers = run("docker", "ps", "--all", "--quiet", "--filter", label, check=False)
        if containers.split():
            run("docker", "rm", "--force", "--volumes", *containers.split(), timeout=120)
        # The engines' data: the images loaded into them, their containers and volumes.
        volumes = run("docker", "volume", "ls", "--quiet", "--filter", label, check=False)
        if volumes.split():
            run("docker", "volume", "rm", "--force", *volumes.split(), timeout=120)
        run("docker", "network", "rm", self.prefix, check=False)
        if hasattr(self, "workdir"):
            run("rm", "-rf", str(self.workdir), check=False)


def _answers(node: Node) -> bool:
    try:
        node.docker("info", "--format", "{{.ServerVersion}}", timeout=10)
    except (AssertionError, subprocess.TimeoutExpired):
        return False
    return True
