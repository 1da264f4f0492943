"""The platform on a two-node swarm, through its gateway: the end-to-end suite, replicas on
both nodes, a rolling update under load, the loss of a node, and nothing left behind.

The tests run in this order on one deployment (each leaves the stack converged for the next),
the node loss last but for the clean-up check.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from conftest import Platform
from swarm import FIGURES, NestedSwarm, run, wait_until

PASSWORD = "correct horse battery staple"


def summary_line(output: str) -> str:
    """pytest's last line: '89 passed, 1 warning in 61.2s'."""
    return output.strip().splitlines()[-1]


def assert_all_passed(result: Any) -> str:
    summary = summary_line(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", summary), summary
    for word in ("skipped", "failed", "error", "xfail", "deselected"):
        assert word not in summary, result.stdout[-6000:]
    return summary


def register(client: httpx.Client, email: str) -> str:
    response = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def journey(gateway_url: str) -> None:
    """A user's first minutes: sign up, log in, create an item, read it back, see the welcome."""
    with httpx.Client(base_url=gateway_url, timeout=5) as client:
        email = f"swarm-journey-{uuid.uuid4().hex[:10]}@example.com"
        register(client, email)
        login = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post("/api/v1/items/", json={"title": "after the loss"}, headers=auth)
        assert created.status_code == 201, created.text
        read = client.get(f"/api/v1/items/{created.json()['id']}", headers=auth)
        assert read.status_code == 200, read.text
        assert client.get("/api/v1/users/me", headers=auth).status_code == 200
        deadline = time.monotonic() + 10
        while client.get("/api/v1/notifications/", headers=auth).json()["total"] < 1:
            assert time.monotonic() < deadline, "no welcome notification"
            time.sleep(0.2)


def test_the_end_to_end_suite_passes_against_the_swarm(platform: Platform) -> None:
    started = time.monotonic()
    result = platform.run_e2e()
    FIGURES["e2e_suite_s"] = round(time.monotonic() - started, 1)
    FIGURES["e2e_summary"] = assert_all_passed(result)


def test_items_scaled_to_three_answer_reads_from_both_nodes(
    platform: Platform, swarm: NestedSwarm
) -> None:
    started = time.monotonic()
    swarm.manager.docker("service", "scale", "--detach", "platform_items=3")
    wait_until("3 items tasks", lambda: swarm.services()["items"] == (3, 3), timeout=180)
    FIGURES["scale_items_2_to_3_s"] = round(time.monotonic() - started, 1)
    tasks = swarm.tasks("items")
    assert {task["node"] for task in tasks} == {"node1", "node2"}, tasks

    since = str(int(time.time()) - 1)
    marker = f"swarm-spread-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=platform.gateway_url, timeout=10) as client:
        email = f"{marker}@example.com"
        register(client, email)
        login = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        item = client.post("/api/v1/items/", json={"title": "spread"}, headers=auth).json()
        # One keep-alive client, as a browser would be: the spread must not depend on new
        # connections from the client.
        for n in range(60):
            read = client.get(
                f"/api/v1/items/{item['id']}", headers={**auth, "X-Request-ID": f"{marker}-{n}"}
            )
            assert read.status_code == 200, read.text

    # Which task answered each read: its log line carries the request id; `docker service
    # logs` prefixes each line with the task's name and node.
    def answered() -> Counter[str]:
        lines = swarm.logs("items", since).splitlines()
        return Counter(
            line.split(" ", 1)[0].split("@")[-1] for line in lines if f'"{marker}-' in line
        )

    seen: list[Counter[str]] = [Counter()]

    def every_read_logged() -> bool:
        seen[0] = answered()
        return sum(seen[0].values()) >= 60

    wait_until("every read logged", every_read_logged, timeout=30)
    nodes = seen[0]
    FIGURES["reads_per_node_items_x3"] = dict(nodes)
    assert set(nodes) == {"node1", "node2"}, nodes


def test_a_rolling_update_under_steady_requests_fails_none(
    platform: Platform, swarm: NestedSwarm
) -> None:
    with httpx.Client(base_url=platform.gateway_url, timeout=10) as client:
        email = f"swarm-update-{uuid.uuid4().hex[:8]}@example.com"
        register(client, email)
        login = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        item = client.post("/api/v1/items/", json={"title": "rolling"}, headers=auth).json()
    before = {task["id"] for task in swarm.tasks("items")}
    statuses: Counter[int | str] = Counter()
    stop = threading.Event()

    def steady_reads() -> None:
        # A new client per request too: no request may fail however it reaches the gateway.
        while not stop.is_set():
            try:
                with httpx.Client(base_url=platform.gateway_url, timeout=10) as reader:
                    statuses[
                        reader.get(f"/api/v1/items/{item['id']}", headers=auth).status_code
                    ] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            time.sleep(0.05)

    reader = threading.Thread(target=steady_reads)
    reader.start()
    try:
        time.sleep(2)
        started = time.monotonic()
        swarm.manager.docker(
            "service",
            "update",
            "--detach=false",
            "--quiet",
            "--env-add",
            f"ROLLOUT={uuid.uuid4().hex[:6]}",
            "platform_items",
            timeout=600,
        )
        FIGURES["rolling_update_items_x3_s"] = round(time.monotonic() - started, 1)
        time.sleep(2)
    finally:
        stop.set()
        reader.join()
    FIGURES["rolling_update_requests"] = dict(statuses)
    after = {task["id"] for task in swarm.tasks("items")}
    assert len(after) == 3 and not before & after, (before, after)
    assert statuses[200] > 50 and set(statuses) == {200}, statuses


def test_node_two_lost_its_tasks_return_on_node_one_and_nothing_is_lost_or_doubled(
    platform: Platform, swarm: NestedSwarm
) -> None:
    for service in ("auth", "users", "items", "notifications"):
        assert "node2" in {task["node"] for task in swarm.tasks(service)}, service
    accounts: list[str] = []
    failures: Counter[str] = Counter()
    stop = threading.Event()

    def steady_registrations() -> None:
        # Registrations across the loss: every one that was answered 201 must get its mail.
        while not stop.is_set():
            email = f"swarm-loss-{uuid.uuid4().hex[:10]}@example.com"
            try:
                with httpx.Client(base_url=platform.gateway_url, timeout=10) as client:
                    response = client.post(
                        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                    )
                if response.status_code == 201:
                    accounts.append(email)
                else:
                    failures[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
            time.sleep(0.3)

    registrations = threading.Thread(target=steady_registrations)
    registrations.start()
    try:
        time.sleep(3)
        lost_at = time.monotonic()
        # Power lost: the node's engine and every process on it die at once.
        run("docker", "kill", swarm.nodes[1].name)

        def journey_passes() -> bool:
            try:
                journey(platform.gateway_url)
            except (AssertionError, httpx.HTTPError, ValueError, KeyError):
                return False
            return True

        wait_until("a journey passing again", journey_passes, timeout=180, interval=0.5)
        FIGURES["failover_node_lost_to_journey_passes_s"] = round(time.monotonic() - lost_at, 1)

        def all_on_node1() -> bool:
            services = swarm.services()
            return all(r == d for r, d in services.values()) and all(
                task["node"] == "node1"
                for name in ("auth", "users", "items", "notifications")
                for task in swarm.tasks(name)
            )

        wait_until("every task back on node1", all_on_node1, timeout=180)
        FIGURES["failover_node_lost_to_tasks_on_node1_s"] = round(time.monotonic() - lost_at, 1)
        time.sleep(3)
    finally:
        stop.set()
        registrations.join()
    FIGURES["failover_registrations"] = {"201": len(accounts), **failures}

    # The journeys of the end-to-end suite through the four services pass on what is left.
    journeys = [
        f"tests-e2e/test_{name}_journey.py" for name in ("signup", "items", "notifications")
    ]
    FIGURES["e2e_journeys_after_loss"] = assert_all_passed(platform.run_e2e(*journeys))

    # Every registration answered 201, before, during and after the loss: exactly one
    # verification mail, however its event travelled (outbox relay, consumer, mailer).
    assert len(accounts) >= 10, (accounts, failures)
    with httpx.Client(base_url=platform.mailbox_url, timeout=10) as mailbox:

        def confirm_mails(email: str) -> int:
            found = mailbox.get("/api/v1/search", params={"query": f"to:{email}"}).json()
            return sum("Confirm" in message["Subject"] for message in found["messages"])

        def every_mail_arrived() -> bool:
            return all(confirm_mails(email) >= 1 for email in accounts)

        wait_until("a mail for every registration", every_mail_arrived, timeout=90)
        time.sleep(5)  # a doubled mail would come late: give it the time to
        counts = Counter(confirm_mails(email) for email in accounts)
    assert counts == Counter({1: len(accounts)}), counts


def test_everything_is_removed_afterwards(swarm: NestedSwarm) -> None:
    assert swarm.leftovers() != [], "the swarm should still exist before removal"
    swarm.remove()
    assert swarm.leftovers() == []
