"""A realistic mix of traffic through the gateway, for `make soak` (load/run_soak.py).

Each simulated user registers once, logs in, creates an item, then loops over what a
client does most: reading its items, profile and notifications, with now and then a
write (create, If-Match PATCH, delete, profile update), a token refresh or a fresh login.

Every answer is checked: anything but the expected status (or a body that does not say
what it should) counts as a failure, and the soak fails on any failure.

    locust -f load/locustfile.py --host http://127.0.0.1:8000
"""

import csv
import random
import uuid
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

PASSWORD = "soak-password-1"
_environment: Environment | None = None


@events.init.add_listener
def _remember_environment(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment


@events.quit.add_listener
def _write_final_csv(**_: Any) -> None:
    """`<csv prefix>_final_{stats,failures,exceptions}.csv`: the numbers at the very end.

    Locust's own `--csv` files are rewritten once a second, so they miss the last moments
    of the run; these are written once every user has stopped.
    """
    prefix = getattr(_environment and _environment.parsed_options, "csv_prefix", None)
    if _environment is None or not prefix:
        return
    writer = StatsCSV(_environment, PERCENTILES_TO_REPORT)
    for kind, write in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        with open(f"{prefix}_final_{kind}.csv", "w", newline="") as file:
            write(csv.writer(file))


class PlatformUser(HttpUser):
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.email = f"soak-{uuid.uuid4().hex[:16]}@example.com"
        self.items: dict[str, str] = {}  # item id -> its current ETag
        self.access_token = self.refresh_token = ""
        self._expect(
            "POST",
            "/api/v1/auth/register",
            201,
            name="register",
            json={"email": self.email, "password": PASSWORD},
            auth=False,
        )
        self.login()
        self.create_item()

    # ---- helpers ------------------------------------------------------------------------
    def _expect(
        self,
        method: str,
        path: str,
        status: int,
        *,
        name: str,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request that must answer `status`; returns the JSON body (None for 204)."""
        all_headers = dict(headers or {})
        if auth:
            all_headers["Authorization"] = f"Bearer {self.access_token}"
        with self.client.request(
            method, path, name=name, headers=all_headers, catch_response=True, **kwargs
        ) as response:
            if response.status_code != status:
                response.failure(
                    f"{response.status_code} instead of {status}: {response.text[:200]}"
                )
                return None
            if status == 204:
                response.success()
                return None
            try:
                body = response.json()
            except ValueError:
                response.failure("not JSON")
                return None
            response.success()
            if path.startswith("/api/v1/items/") and "ETag" in response.headers:
                self.items[body["id"]] = response.headers["ETag"]
            return body

    def _some_item(self) -> str | None:
        return random.choice(list(self.items)) if self.items else None

    # ---- the mix ------------------------------------------------------------------------
    @task(1)
    def login(self) -> None:
        tokens = self._expect(
            "POST",
            "/api/v1/auth/token",
            200,
            name="login",
            auth=False,
            data={"username": self.email, "password": PASSWORD},
        )
        if tokens:
            self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    @task(2)
    def refresh(self) -> None:
        tokens = self._expect(
            "POST",
            "/api/v1/auth/refresh",
            200,
            name="refresh",
            auth=False,
            json={"refresh_token": self.refresh_token},
        )
        if tokens:
            self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    @task(8)
    def list_items(self) -> None:
        self._expect("GET", "/api/v1/items/", 200, name="list items", params={"limit": 20})

    @task(8)
    def read_item(self) -> None:
        item_id = self._some_item()
        if item_id:
            self._expect("GET", f"/api/v1/items/{item_id}", 200, name="read item")

    @task(5)
    def read_profile(self) -> None:
        self._expect("GET", "/api/v1/users/me", 200, name="read profile")

    @task(2)
    def read_account(self) -> None:
        self._expect("GET", "/api/v1/auth/me", 200, name="read account")

    @task(4)
    def list_notifications(self) -> None:
        self._expect("GET", "/api/v1/notifications/", 200, name="list notifications")

    @task(2)
    def create_item(self) -> None:
        self._expect(
            "POST",
            "/api/v1/items/",
            201,
            name="create item",
            json={
                "title": f"item {uuid.uuid4().hex[:8]}",
                "description": "created by the soak test",
                "price": f"{random.randint(0, 10_000) / 100:.2f}",
                "tags": random.sample(["red", "green", "blue", "soak", "sale"], k=2),
            },
        )

    @task(3)
    def patch_item(self) -> None:
        item_id = self._some_item()
        if item_id:
            self._expect(
                "PATCH",
                f"/api/v1/items/{item_id}",
                200,
                name="patch item (If-Match)",
                headers={"If-Match": self.items[item_id]},
                json={"title": f"renamed {uuid.uuid4().hex[:8]}"},
            )

    @task(1)
    def delete_item(self) -> None:
        if len(self.items) > 1:
            item_id = random.choice(list(self.items))
            etag = self.items.pop(item_id)
            self._expect(
                "DELETE",
                f"/api/v1/items/{item_id}",
                204,
                name="delete item (If-Match)",
                headers={"If-Match": etag},
            )

    @task(1)
    def update_profile(self) -> None:
        self._expect(
            "PATCH",
            "/api/v1/users/me",
            200,
            name="update profile",
            json={"display_name": f"Soak {uuid.uuid4().hex[:6]}", "bio": "load testing"},
        )
