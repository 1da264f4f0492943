"""The demo service's metrics, scraped from its metrics port as Prometheus would."""

import contextlib
import socket
import time

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from servicekit import revocation
from servicekit.metrics import MetricsServer


async def scrape(app: FastAPI) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    settings = app.state.settings
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{settings.METRICS_PORT}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_per_route_template_not_per_path(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    route = "/api/v1/demo/things/{name}"
    before = await scrape(demo_app)
    for name in ("lamp", "chair"):
        assert (await client.get(f"/api/v1/demo/things/{name}")).status_code == 404
    after = await scrape(demo_app)
    counted = ("http_requests_total", {"route": route, "method": "GET", "status": "404"})
    assert value(after, counted[0], **counted[1]) - value(before, counted[0], **counted[1]) == 2
    timed = {"route": route, "method": "GET"}
    assert value(after, "http_request_duration_seconds_count", **timed) >= 2
    assert not any("lamp" in str(labels) for _, labels in after)


async def test_unmatched_paths_share_one_series(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    before = await scrape(demo_app)
    for path in ("/nowhere/1", "/nowhere/2", "/x" * 50):
        assert (await client.get(path)).status_code == 404
    after = await scrape(demo_app)
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 3
    )
    assert not any("nowhere" in str(labels) for _, labels in after)


async def test_an_unknown_method_is_counted_as_other(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    await client.request("BREW", "/api/v1/demo/health")
    labels = {"route": "/api/v1/demo/health", "method": "OTHER", "status": "405"}
    assert value(await scrape(demo_app), "http_requests_total", **labels) >= 1


async def test_the_service_port_never_serves_metrics(client: httpx.AsyncClient) -> None:
    for path in ("/metrics", "/api/v1/demo/metrics", "/metrics/", "/api/v1/demo/../../metrics"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "http_requests_total" not in response.text


async def test_token_verifications_are_counted_by_result(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    await revocation.mark_restored(demo_app.state.redis)  # other modules flush the Redis
    before = await scrape(demo_app)
    headers = demo_app.state.tokens.headers()
    assert (await client.get("/api/v1/demo/whoami", headers=headers)).status_code == 200
    assert (
        await client.get("/api/v1/demo/whoami", headers={"Authorization": "Bearer junk"})
    ).status_code == 401
    after = await scrape(demo_app)
    for result in ("valid", "invalid"):
        moved = value(after, "token_verifications_total", result=result) - value(
            before, "token_verifications_total", result=result
        )
        assert moved == 1, result


async def test_database_pools_in_use_are_exported(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    assert (await client.get("/api/v1/demo/numbers")).status_code == 200
    samples = await scrape(demo_app)
    for pool in ("write", "read"):
        assert ("db_pool_connections_in_use", frozenset({("pool", pool)})) in samples
    assert value(samples, "db_pool_connections_in_use", pool="read") == 0  # all returned


async def test_a_head_request_is_counted_under_its_routes_template(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    assert (await client.head("/api/v1/demo/health")).status_code == 200
    labels = {"route": "/api/v1/demo/health", "method": "HEAD", "status": "200"}
    assert value(await scrape(demo_app), "http_requests_total", **labels) >= 1


def test_a_busy_metrics_port_is_taken_once_it_is_free() -> None:
    """A reloaded service starts while its predecessor still holds the port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = MetricsServer("127.0.0.1", port, retry_every=0.05)
        server.start()  # does not raise
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                if response.status_code == 200:
                    break
            time.sleep(0.05)
        assert "http_requests_total" in response.text
    finally:
        server.stop()
