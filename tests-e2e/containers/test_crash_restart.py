"""A service container crashes while it works; the engine restarts it; nothing is lost or
sent twice. Run by `make e2e-compose` alone, after the suite: the crash would fail the
requests of any test beside it.

Killed as a crash (SIGKILL to its process from the host): `docker kill` counts as a manual
stop, after which no restart policy applies.
"""

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import httpx
from e2e import PASSWORD, Mailbox, eventually, gateway_client, unique_email

PROJECT = os.environ.get("E2E_COMPOSE_PROJECT", "")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def container_of(service: str) -> dict[str, object]:
    [container_id] = docker(
        "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}",
        "--filter", f"label=com.docker.compose.service={service}",
    ).split()  # fmt: skip
    return dict(json.loads(docker("inspect", container_id))[0])


def crash(container: dict[str, object]) -> None:
    """SIGKILL the container's process, as the kernel's OOM killer would."""
    pid = int(container["State"]["Pid"])  # type: ignore[index]
    if os.geteuid() == 0:
        os.kill(pid, signal.SIGKILL)
        return
    # Not root: from a root container in the host's PID namespace, with the service's image.
    docker(
        "run", "--rm", "--pid=host", "--user=0", "--entrypoint=python", str(container["Image"]),
        "-c", f"import os; os.kill({pid}, 9)",
    )  # fmt: skip


def test_auth_crashing_among_registrations_loses_and_doubles_no_account_or_mail(
    gateway_url: str, mailbox: Mailbox, new_client_address: Callable[[], str | None]
) -> None:
    def client() -> httpx.Client:
        """A client of its own address: the rate limit and login throttle stay out of it."""
        return gateway_client(gateway_url, new_client_address())

    auth = container_of("auth")
    restarts = int(auth["RestartCount"])  # type: ignore[call-overload]
    emails = [unique_email("crash") for _ in range(40)]
    answers: dict[str, int | None] = {}  # None: the connection broke, the outcome is unknown
    registered_some = threading.Event()

    def register_all() -> None:
        for email in emails:
            with client() as registering:
                try:
                    answer = registering.post(
                        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                    )
                    answers[email] = answer.status_code
                except httpx.TransportError:
                    answers[email] = None
            if sum(status == 201 for status in answers.values()) >= 5:
                registered_some.set()
            time.sleep(0.05)

    worker = threading.Thread(target=register_all)
    worker.start()
    assert registered_some.wait(30), answers
    crash(auth)  # right after a registration committed, with others on the way
    worker.join(120)

    # The engine brings it back (restart: unless-stopped), healthy.
    def restarted() -> bool:
        state = container_of("auth")
        health = state["State"]["Health"]["Status"]  # type: ignore[index]
        return int(state["RestartCount"]) > restarts and health == "healthy"  # type: ignore[call-overload]

    assert eventually(restarted, timeout=120, interval=0.5), "the engine did not restart auth"
    statuses = list(answers.values())
    assert statuses.count(201) >= 5 and set(statuses) - {201} <= {None, 502, 503, 504}, answers
    assert set(statuses) != {201}, "the crash did not interrupt a single registration"

    # Every account that exists has exactly one confirmation mail; none that does not.
    for email, status in answers.items():
        with client() as logging_in:
            login = logging_in.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
        assert login.status_code in (200, 401), login.text
        exists = login.status_code == 200
        if status == 201:
            assert exists, f"{email} was registered (201) and is gone"
        if exists:
            mailbox.wait_for(email, "Confirm")
        else:
            assert mailbox.messages_to(email) == [], f"{email} does not exist, yet got mail"
    # Late duplicates (a relay or mailer repeating work after the restart) would arrive now.
    time.sleep(3)
    for email in answers:
        confirmations = [m for m in mailbox.messages_to(email) if "Confirm" in m["Subject"]]
        assert len(confirmations) <= 1, f"{email}: {len(confirmations)} confirmation mails"


def test_a_restarted_gateway_is_healthy_only_once_its_own_answers_are_json(
    gateway_url: str,
) -> None:
    """`up --wait` and dependants trust the healthcheck: from the moment it passes, an
    unknown path is the JSON 404, never Traefik's plain-text 503 of an unchecked pool."""
    docker("restart", "--time", "5", str(container_of("traefik")["Id"]))

    def health() -> str:
        return str(container_of("traefik")["State"]["Health"]["Status"])  # type: ignore[index]

    assert eventually(lambda: health() == "healthy", timeout=60, interval=0.2)
    unknown = httpx.get(f"{gateway_url}/no-such-path", timeout=5)
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"] == "application/json" and "detail" in unknown.json()
