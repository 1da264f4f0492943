"""Requests that race through the gateway: the database decides, exactly one wins.

Each race starts its clients together on a barrier, each on its own connection (opened
beforehand, so the race is not decided by who connects first).
"""

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from reliability_support import PASSWORD, Api, Measurements, bearer, unique_email

from devstack.stack import Stack

RACERS = 8

Call = Callable[[httpx.Client], httpx.Response]
Race = Callable[[list[Call]], list[httpx.Response]]


@pytest.fixture
def race(
    stack: Stack,
) -> Iterator[Callable[[list[Callable[[httpx.Client], httpx.Response]]], list[httpx.Response]]]:
    clients = [httpx.Client(base_url=stack.config.gateway_url, timeout=30) for _ in range(RACERS)]
    for client in clients:
        client.get("/api/v1/auth/health")  # open the connection before the race

    def run(calls: list[Call]) -> list[httpx.Response]:
        barrier = threading.Barrier(len(calls))
        answers: list[httpx.Response | None] = [None] * len(calls)

        def racer(index: int) -> None:
            barrier.wait()
            answers[index] = calls[index](clients[index])

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert all(answer is not None for answer in answers), "a racer did not finish"
        return [answer for answer in answers if answer is not None]

    try:
        yield run
    finally:
        for client in clients:
            client.close()


def test_same_email_registrations_racing_create_one_account(
    race: Race, api: Api, measurements: Measurements
) -> None:
    email = unique_email("race")
    # The same address in different cases: emails are case-insensitive.
    variants = [email.upper() if i % 2 else email for i in range(RACERS)]

    def register(address: str) -> Call:
        return lambda client: client.post(
            "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )

    answers = race([register(address) for address in variants])
    statuses = Counter(answer.status_code for answer in answers)
    measurements.record("races", "racers", RACERS)
    measurements.record("races", "same_email_registrations", dict(statuses))
    assert statuses == {201: 1, 409: RACERS - 1}, [a.text for a in answers]
    admin = api.admin()
    listed = api.client.get(
        "/api/v1/auth/accounts", headers=admin.headers, params={"q": email}
    ).json()
    assert listed["total"] == 1


def test_same_refresh_token_racing_is_spent_once(
    race: Race, api: Api, measurements: Measurements
) -> None:
    user = api.new_user("race-refresh")
    answers = race(
        [
            lambda client: client.post(
                "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
            )
        ]
        * RACERS
    )
    statuses = Counter(answer.status_code for answer in answers)
    measurements.record("races", "same_refresh_token", dict(statuses))
    assert statuses == {200: 1, 401: RACERS - 1}, [a.text for a in answers]


def test_losers_of_a_refresh_race_count_as_reuse_and_end_the_session(race: Race, api: Api) -> None:
    user = api.new_user("race-reuse")
    answers = race(
        [
            lambda client: client.post(
                "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
            )
        ]
        * RACERS
    )
    [winner] = [answer.json() for answer in answers if answer.status_code == 200]
    # The winner's pair belongs to the session that the reuse ended.
    refreshed = api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]}
    )
    me = api.client.get("/api/v1/auth/me", headers=bearer(winner["access_token"]))
    assert (refreshed.status_code, me.status_code) == (401, 401)


def test_if_match_patches_racing_on_one_version_let_exactly_one_win(
    race: Race, api: Api, measurements: Measurements
) -> None:
    user = api.new_user("race-patch")
    created = api.client.post("/api/v1/items/", headers=user.headers, json={"title": "v1"})
    assert created.status_code == 201
    item_id, etag = created.json()["id"], created.headers["ETag"]
    rounds = []

    def patch(title: str, etag: str) -> Call:
        return lambda client: client.patch(
            f"/api/v1/items/{item_id}",
            headers={**user.headers, "If-Match": etag},
            json={"title": title},
        )

    for round_number in range(5):
        titles = [f"round-{round_number}-racer-{i}-{uuid.uuid4().hex[:6]}" for i in range(RACERS)]
        answers = race([patch(title, etag) for title in titles])
        statuses = Counter(answer.status_code for answer in answers)
        rounds.append(dict(statuses))
        assert statuses == {200: 1, 412: RACERS - 1}, [a.text for a in answers]
        [winner] = [answer for answer in answers if answer.status_code == 200]
        current = api.client.get(f"/api/v1/items/{item_id}", headers=user.headers)
        assert current.json()["version"] == round_number + 2
        assert current.json()["title"] == winner.json()["title"]
        assert current.headers["ETag"] == winner.headers["ETag"]
        etag = winner.headers["ETag"]
    measurements.record("races", "if_match_patch_rounds", rounds)
