"""What an operator sees: Prometheus scraping every service and the gateway, alerts and the
dashboard naming only what is exported, and a registration's trace id in every log line
it leads to. Metrics are reached only where the operator reaches them: never through the
public gateway.

Needs PROMETHEUS_URL (set with the private stack; `make e2e-compose` publishes compose's
Prometheus) and the services' logs (STACK_LOGS_DIR natively, else `docker compose logs`).
"""

import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e import PASSWORD, SERVICES, User, unique_email

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"
Eventually = Callable[..., Any]


@pytest.fixture(scope="module")
def prometheus() -> httpx.Client:
    url = os.environ.get("PROMETHEUS_URL")
    assert url, "PROMETHEUS_URL is unset: run `pytest tests-e2e`, which starts a stack with one"
    return httpx.Client(base_url=url, timeout=10.0)


def query(prometheus: httpx.Client, expr: str) -> dict[str, float]:
    """An instant query: the value of each series, keyed by its job."""
    answer = prometheus.get("/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", answer
    return {
        item["metric"].get("job", ""): float(item["value"][1]) for item in answer["data"]["result"]
    }


def request_counts(prometheus: httpx.Client) -> dict[str, float]:
    counts = query(prometheus, "sum by (job) (http_requests_total)")
    gateway = query(prometheus, 'sum(traefik_entrypoint_requests_total{entrypoint="web"})')
    return {**counts, "gateway": gateway.get("", 0.0)}


def journey(api: httpx.Client, make_user: Callable[..., User]) -> None:
    """One user through every service: register (auth), profile, an item, notifications."""
    user = make_user()
    assert api.get("/api/v1/users/me", headers=user.auth).status_code == 200
    created = api.post("/api/v1/items/", headers=user.auth, json={"title": "observed"})
    assert created.status_code == 201, created.text
    assert api.get("/api/v1/notifications/", headers=user.auth).status_code == 200


def test_a_journey_moves_every_request_counter_and_drains_the_outbox(
    api: httpx.Client,
    make_user: Callable[..., User],
    prometheus: httpx.Client,
    eventually: Eventually,
) -> None:
    jobs = (*SERVICES, "gateway")
    assert eventually(lambda: set(jobs) <= set(request_counts(prometheus)), timeout=30), (
        request_counts(prometheus)
    )
    before = request_counts(prometheus)
    journey(api, make_user)

    def moved() -> dict[str, float]:
        after = request_counts(prometheus)
        return {job: after.get(job, 0.0) - before[job] for job in jobs}

    assert eventually(lambda: all(delta > 0 for delta in moved().values()), timeout=30), moved()
    # The journey's events (registration, item) were staged in the outbox and relayed.
    relayed = query(prometheus, "sum by (job) (events_relayed_total)")
    assert relayed.get("auth", 0) > 0 and relayed.get("items", 0) > 0, relayed
    waiting = lambda: query(prometheus, "outbox_events_waiting")  # noqa: E731
    assert eventually(
        lambda: {"auth", "items"} <= set(waiting()) and not any(waiting().values()), timeout=30
    ), waiting()
    assert query(prometheus, 'up{job=~"gateway|auth|users|items|notifications"}') == dict.fromkeys(
        jobs, 1.0
    )


#: Ways a client might try to reach /metrics through the public entry point.
METRICS_SPELLINGS = [
    "/metrics", "/metrics/", "/METRICS", "/Metrics", "//metrics", "/./metrics", "/%6detrics",
    "/%2fmetrics", "/metrics?format=prometheus", "/metrics%00", "/metrics;x",
    "/api/v1/auth/metrics", "/api/v1/items/metrics", "/api/v1/auth/../../metrics",
    "/api/v1/auth/%2e%2e/%2e%2e/metrics", "/api/v1/auth/..%2f..%2fmetrics",
    "/api/v1/users/%2e%2e%2f%2e%2e%2fmetrics", "/ping", "/api/v1/notifications/../../../ping",
]  # fmt: skip


@pytest.mark.parametrize("path", METRICS_SPELLINGS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_public_gateway_never_serves_metrics(gateway_url: str, path: str, method: str) -> None:
    # Raw bytes on the wire: httpx would normalise the dots and escapes away.
    with httpx.Client(base_url=gateway_url, timeout=10.0) as raw:
        request = raw.build_request(method, gateway_url)
        request.url = request.url.copy_with(raw_path=path.encode())
        response = raw.send(request)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    for marker in ("# TYPE", "# HELP", "traefik_", "http_requests_total", "process_cpu"):
        assert marker not in response.text, (path, marker)


def names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = {
        match[0]
        for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
        if not expr[match.end() :].lstrip().startswith("(")  # a function or an aggregation
    }
    return words - {"and", "or", "unless", "offset", "bool"}


def named_metrics() -> dict[str, set[str]]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    names: dict[str, set[str]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            names[f"alert {rule['alert']}"] = names_in(rule["expr"])
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "platform.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            where = f"panel {panel['title']!r}"
            names[where] = names.get(where, set()) | names_in(target["expr"])
    return names


def test_names_in_promql_are_found() -> None:
    assert names_in('sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) > 0.05') == {
        "http_requests_total"
    }
    assert names_in("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))") == {"x_bucket"}


def test_every_metric_the_dashboard_and_alerts_name_is_exported(
    api: httpx.Client,
    make_user: Callable[..., User],
    prometheus: httpx.Client,
    eventually: Eventually,
) -> None:
    journey(api, make_user)  # so that events have been relayed here, whatever ran before
    wanted = named_metrics()
    assert sum(map(len, wanted.values())) > 20

    def missing() -> dict[str, set[str]]:
        exported = set(prometheus.get("/api/v1/label/__name__/values").json()["data"])
        return {where: names - exported for where, names in wanted.items() if names - exported}

    assert eventually(lambda: not missing(), timeout=30), missing()


# ---- traces -----------------------------------------------------------------------------------


def log_lines(service: str) -> list[dict[str, Any]]:
    logs_dir = os.environ.get("STACK_LOGS_DIR")
    if logs_dir:
        text = (Path(logs_dir) / f"{service}.log").read_text(errors="replace")
    else:
        container = "traefik" if service == "gateway" else service
        command = ["docker", "compose", "logs", "--no-color", "--no-log-prefix", container]
        text = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    lines = []
    for line in text.splitlines():
        start = line.find("{")  # compose may put terminal escapes before the JSON
        if start >= 0:
            try:
                lines.append(json.loads(line[start:]))
            except ValueError:
                continue
    return lines


def test_a_registrations_trace_id_is_in_auth_relay_and_consumer_log_lines(
    api: httpx.Client, eventually: Eventually
) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    registered = api.post(
        "/api/v1/auth/register",
        json={"email": unique_email("traced"), "password": PASSWORD},
        headers={"traceparent": traceparent},
    )
    assert registered.status_code == 201, registered.text

    def traced(service: str, event: str) -> list[dict[str, Any]]:
        return [
            line
            for line in log_lines(service)
            if line.get("trace_id") == trace_id and line["event"] == event
        ]

    (request,) = eventually(lambda: traced("auth", "request"))
    assert request["path"] == "/api/v1/auth/register" and request["status"] == 201
    assert request["request_id"] == registered.headers["x-request-id"]
    relayed = eventually(lambda: traced("auth", "event relayed"))
    assert relayed and relayed[0]["type"] == "user.registered", relayed
    handled = eventually(lambda: traced("notifications", "event handled"), timeout=20)
    assert handled and handled[0]["type"] == "user.registered", handled
    assert handled[0]["request_id"] == registered.headers["x-request-id"]


def test_the_gateway_starts_the_trace_the_service_continues(
    api: httpx.Client, eventually: Eventually
) -> None:
    """No traceparent from the client: Traefik's access log and the service's log line name
    the same trace."""
    path = f"/api/v1/auth/untraced-{secrets.token_hex(6)}"
    assert api.get(path).status_code == 404

    def found() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        gateway = [line for line in log_lines("gateway") if line.get("RequestPath") == path]
        auth = [line for line in log_lines("auth") if line.get("path") == path]
        return gateway, auth

    assert eventually(lambda: all(found()), timeout=20), found()
    gateway, auth = found()
    assert (
        re.fullmatch(r"[0-9a-f]{32}", gateway[0]["TraceId"]) and gateway[0]["TraceId"] != "0" * 32
    )
    assert auth[0]["trace_id"] == gateway[0]["TraceId"]
