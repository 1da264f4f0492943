"""Regenerate docs/reliability.md from fresh runs: the fault and race tests, then a load run.

    uv run python scripts/reliability_report.py                  # about 2 minutes
    uv run python scripts/reliability_report.py --load-time 1m --load-users 30

1. `pytest tests-reliability` with RELIABILITY_RESULTS set, so the tests write what they
   measured (recovery times, delivery delays, status counts) and their outcomes.
2. `load/run_soak.py` for a short Locust run against a fresh private stack.
3. The page is rewritten from both, plus the last `make soak` summary when there is one
   (load/results/soak-summary.json).

Failing tests do not stop the report: they are listed as open findings. The exit status
is 1 when a test or the load run failed, so CI can run this too.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests-reliability"
DOC = REPO / "docs" / "reliability.md"
SOAK_SUMMARY = REPO / "load" / "results" / "soak-summary.json"
COMMAND = "uv run python scripts/reliability_report.py"

#: What a failing test means, for the findings section (shown only while it fails).
FINDINGS = {
    "test_a_token_revoked_before_the_outage_is_still_refused_after_it": (
        "Revocations live only in Redis. A Redis that restarts without its data (the "
        "native stack's private Redis keeps none; a compose Redis without its volume, or "
        "one that lost the last second of its append-only file) forgets every revoked "
        "session, token and not-before time, and tokens revoked before the outage are "
        "accepted again (200) until they expire. The auth service records ended sessions "
        "(`login_session.revoked_at`) but never writes them back to Redis."
    ),
    "test_events_published_but_not_yet_consumed_survive_a_redis_restart": (
        "Same cause: the event stream lives only in Redis once the relay has marked the "
        "outbox rows published. A Redis that restarts without its data loses every event "
        "not yet read by every consumer group; here the verification mails of accounts "
        "registered while the notifications service was stopped never arrive."
    ),
    "test_requests_during_the_outage_get_503_never_500": (
        "While PostgreSQL shuts down or starts up (and during crash recovery) new "
        "connections are refused with SQLSTATE 57P03 (`the database system is shutting "
        "down` / `is starting up` / `is not yet accepting connections`). asyncpg raises "
        "`CannotConnectNowError`, which SQLAlchemy wraps in a plain `DBAPIError` (neither "
        "`OperationalError` nor `InterfaceError`, and not `connection_invalidated`), so "
        "servicekit's error handler answers 500 instead of 503."
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-time", default="30s", help="Locust run time (default 30s)")
    parser.add_argument("--load-users", type=int, default=20, help="simulated users")
    parser.add_argument("--output", type=Path, default=DOC, help="the page to write")
    return parser.parse_args(argv)


def run_tests(workdir: Path) -> dict[str, Any]:
    results = workdir / "reliability.json"
    started = time.monotonic()
    completed = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "pytest", str(TESTS), "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env={**os.environ, "RELIABILITY_RESULTS": str(results)},
        check=False,
    )
    data: dict[str, Any] = (
        json.loads(results.read_text()) if results.exists() else {"figures": {}, "outcomes": {}}
    )
    data["wall_seconds"] = round(time.monotonic() - started, 1)
    data["exit_code"] = completed.returncode
    return data


def run_load(workdir: Path, users: int, run_time: str) -> dict[str, Any]:
    if importlib.util.find_spec("locust") is None:
        sys.exit(
            "locust is not installed in this environment: add it to the dev dependencies, "
            f"or run `uv run --with locust python {Path(__file__).relative_to(REPO)}`"
        )
    summary = workdir / "load.json"
    completed = subprocess.run(  # noqa: S603 - fixed argv
        [
            sys.executable,
            str(REPO / "load" / "run_soak.py"),
            "--users",
            str(users),
            "--spawn-rate",
            str(max(1, users // 2)),
            "--run-time",
            run_time,
            "--csv",
            str(workdir / "load"),
            "--summary-json",
            str(summary),
        ],  # fmt: skip
        cwd=REPO,
        check=False,
    )
    data: dict[str, Any] = json.loads(summary.read_text()) if summary.exists() else {}
    data["exit_code"] = completed.returncode
    return data


# ---- rendering ---------------------------------------------------------------------------


def _module_titles() -> dict[str, str]:
    """Each test module's docstring, first line: the scenario it breaks."""
    titles = {}
    for path in sorted(TESTS.glob("test_*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or path.stem
        titles[path.name] = docstring.split("\n")[0]
    return titles


def _sentence(test_name: str) -> str:
    words = test_name.removeprefix("test_").replace("_", " ")
    for raw, proper in (
        ("redis", "Redis"),
        ("smtp", "SMTP"),
        ("if match", "If-Match"),
        ("message id", "Message-ID"),
    ):
        words = words.replace(raw, proper)
    return words


def _mark(outcome: str) -> str:
    return {"passed": "pass", "failed": "**FAIL**"}.get(outcome, outcome)


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))


def render_tests(tests: dict[str, Any]) -> list[str]:
    outcomes: dict[str, str] = tests.get("outcomes", {})
    titles = _module_titles()
    lines: list[str] = []
    by_module: dict[str, list[tuple[str, str]]] = {}
    for nodeid, outcome in outcomes.items():
        module, _, name = nodeid.partition("::")
        by_module.setdefault(Path(module).name, []).append((name, outcome))
    for module, title in titles.items():
        lines += [f"### {title}", "", f"`tests-reliability/{module}`", ""]
        lines += ["| check | outcome |", "|---|---|"]
        for name, outcome in by_module.get(module, []):
            base, _, param = name.partition("[")
            suffix = f" ({param.rstrip(']')})" if param else ""
            lines.append(f"| {_sentence(base)}{suffix} | {_mark(outcome)} |")
        lines.append("")
        lines += render_figures(module, tests.get("figures", {}))
    return lines


def render_figures(module: str, figures: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if module == "test_redis_outage.py" and (f := figures.get("redis_outage")):
        during = f.get("during", {})
        lines += [
            f"- Protected routes with a live token during the outage: "
            f"{_statuses(_count(during.get('protected', {})))}; with the revoked token: "
            f"{_statuses(_count(during.get('revoked_token', {})))}.",
            f"- Login: {during.get('login')}, refresh: {during.get('refresh')}, "
            f"registrations: {during.get('registrations')}.",
            f"- The revoked token after the outage: "
            f"{_statuses(_count(f.get('revoked_token_after', {})))} (401 expected).",
            f"- Protected routes served again **{f.get('recovery_seconds')} s** after Redis "
            f"was back; the verification mails of the outage's registrations arrived "
            f"**{f.get('mail_delivery_seconds_after_redis_returned', 'n/a')} s** after it.",
        ]
    if module == "test_postgres_outage.py":
        for mode, label in (("stop", "Clean stop"), ("kill", "Crash (SIGKILL)")):
            f = figures.get(f"postgres_{mode}")
            if not f:
                continue
            clients = "; ".join(
                f"{client}: {_statuses(counts)}" for client, counts in f["statuses"].items()
            )
            lines.append(
                f"- {label}: PostgreSQL away {f.get('outage_seconds')} s; every service "
                f"ready **{f['ready_seconds_after_start']} s** after "
                f"PostgreSQL was back, every client served again after "
                f"**{f['traffic_seconds_after_start']} s**; PATCHes that failed and were "
                f"checked: {f['patches_that_failed']}. Answers seen: {clients}."
            )
    if module == "test_consumer_crash.py" and (f := figures.get("consumer_crash")):
        lines += [
            f"- {f.get('accounts')} registrations in {f.get('registration_seconds')} s; "
            f"{f.get('mails_before_kill')} mails had gone out when the consumer was killed.",
            f"- Every account had its mail **{f.get('all_mails_seconds_after_restart', 'n/a')}"
            f" s** after the restart; copies of a mail sent again (same Message-ID, see the "
            f"mailer crash below): {f.get('resent_copies', 'n/a')}.",
        ]
    if module == "test_mailer_crash.py" and (f := figures.get("mailer_crash")):
        lines.append(
            f"- The mail in flight was sent again **{f.get('resent_seconds_after_kill')} s** "
            f"after the kill (its 5 s lease); copies received: {f.get('copies_received')}, "
            "one Message-ID."
        )
    if module == "test_smtp_outage.py" and (f := figures.get("smtp_outage")):
        lines.append(
            f"- Every delivery `sent` **{f.get('all_sent_seconds_after_smtp_returned')} s** "
            f"after the SMTP server was back; attempts per delivery: {f.get('attempts')}."
        )
    if module == "test_concurrency.py" and (f := figures.get("races")):
        lines += [
            f"- {f.get('racers')} racers each: same email "
            f"{_statuses(f.get('same_email_registrations', {}))}; same refresh token "
            f"{_statuses(f.get('same_refresh_token', {}))}; If-Match PATCH rounds "
            + ", ".join(_statuses(r) for r in f.get("if_match_patch_rounds", []))
            + "."
        ]
    if module == "test_hot_row.py" and (f := figures.get("hot_row")):
        lines.append(
            f"- One item's row held **{f.get('hold_seconds')} s**: its PATCHes "
            f"{_statuses(f.get('hot_patches', {}))}; other writes "
            f"{_statuses(f.get('unrelated_writes', {}))}, the slowest "
            f"{f.get('slowest_unrelated_seconds')} s; `/ready` {_statuses(f.get('ready', {}))}."
        )
    return [*lines, ""] if lines else []


def _count(statuses: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def render_load(load: dict[str, Any], title: str) -> list[str]:
    if not load.get("total"):
        return [f"### {title}", "", "No result: the load run did not finish.", ""]
    total = load["total"]
    lines = [
        f"### {title}",
        "",
        f"{load['users']} users (spawn rate {load['spawn_rate']}/s) for {load['run_time']}, "
        f"finished {load['finished_at']}, {load['cpus']} CPUs shared by the stack and Locust.",
        "",
        f"**{total['requests']} requests, {total['failures']} failures, "
        f"{total['rps']} req/s; p50 {_ms(total['p50'])}, p95 {_ms(total['p95'])}, "
        f"p99 {_ms(total['p99'])}, max {_ms(total['max'])}.** "
        f"Processes that died: {len(load['dead_processes'])}.",
        "",
        "| request | count | failures | req/s | p50 | p95 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(load["endpoints"], key=lambda r: -r["requests"]):
        lines.append(
            f"| {row['method']} {row['name']} | {row['requests']} | {row['failures']} | "
            f"{row['rps']} | {_ms(row['p50'])} | {_ms(row['p95'])} | {_ms(row['p99'])} |"
        )
    for failure in load.get("failures", [])[:10]:
        lines.append(f"\nFailure: `{failure}`")
    return [*lines, ""]


def render(tests: dict[str, Any], load: dict[str, Any], soak: dict[str, Any] | None) -> str:
    outcomes = tests.get("outcomes", {})
    failed = [nodeid for nodeid, outcome in outcomes.items() if outcome != "passed"]
    stack_start = tests.get("figures", {}).get("stack", {}).get("start_seconds")
    lines = [
        "# Reliability under faults, races and load",
        "",
        f"Regenerate this page with `{COMMAND}` (about two minutes: it runs "
        "`tests-reliability/` and a short Locust run, each against its own private native "
        "stack). Nothing here is written by hand except the code that writes it.",
        "",
        "The tests alone: `make test-reliability` (`uv run pytest tests-reliability`, about "
        "a minute). The load alone: `make soak` (`uv run python load/run_soak.py`: 30 users "
        "for 3 minutes; CSV statistics in `load/results/`; fails on any error); its summary "
        "is included below when present.",
        "",
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} on "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "## Summary",
        "",
        f"- Fault and race tests: **{len(outcomes) - len(failed)} passed, {len(failed)} "
        f"failed** in {tests.get('wall_seconds')} s (stack start-up {stack_start} s).",
    ]
    if load.get("total"):
        total = load["total"]
        lines.append(
            f"- Short load run: {total['requests']} requests, **{total['failures']} "
            f"failures**, {total['rps']} req/s, p50 {_ms(total['p50'])}, p95 "
            f"{_ms(total['p95'])}, p99 {_ms(total['p99'])}."
        )
    if soak and soak.get("total"):
        total = soak["total"]
        lines.append(
            f"- Last `make soak` ({soak['users']} users, {soak['run_time']}): "
            f"{total['requests']} requests, **{total['failures']} failures**, "
            f"{total['rps']} req/s, p50 {_ms(total['p50'])}, p95 {_ms(total['p95'])}, "
            f"p99 {_ms(total['p99'])}."
        )
    lines += ["", "## Open findings", ""]
    if not failed:
        lines += ["None: every check passed.", ""]
    failing: dict[str, list[str]] = {}  # test (module::name) -> failing parameters
    for nodeid in failed:
        test, _, param = nodeid.partition("[")
        failing.setdefault(test, []).append(param.rstrip("]"))
    for test, params in failing.items():
        name = test.partition("::")[2]
        where = f" ({', '.join(params)})" if any(params) else ""
        explanation = FINDINGS.get(name, "see the test's assertion message (`pytest -k` it).")
        lines.append(f"- `{test}`{where}: {explanation}")
    lines += [
        "",
        "## How the faults are made",
        "",
        "One private native stack (`devstack.Stack` with its own PostgreSQL cluster, Redis "
        "server, mail sink, the four services and the gateway on free ports) serves the "
        "whole test session. Each module breaks one thing, observes, and repairs it; before "
        "every test the stack is healed if a failure left something down. Settings lowered "
        "for speed (`tests-reliability/reliability_support.py`, `STACK_ENV`): a dead "
        "consumer's messages are claimed after 1 s, the mailer polls every 0.2 s and retries "
        "from 0.5 s up to 2 s apart, a mail lease lasts 5 s, and the gateway's rate limit on "
        "the credential routes is lifted. Times are measured from the moment the broken "
        "piece is back (its `start()` returned) to the first moment the outcome is seen, "
        "polling every 50 to 250 ms.",
        "",
        "## Fault scenarios and races",
        "",
        *render_tests(tests),
        "## Load",
        "",
        "`load/locustfile.py`: each simulated user registers, logs in and creates an item, "
        "then loops over reads (items, one item, profile, account, notifications) with "
        "writes now and then (create, If-Match PATCH and DELETE, profile update), token "
        "refreshes and fresh logins, waiting 0.1 to 0.5 s between requests. Any unexpected "
        "status is a failure. `make soak` runs it for 3 minutes with 30 users.",
        "",
        *render_load(load, "Short run (this report)"),
    ]
    if soak:
        lines += render_load(soak, "Last soak (`make soak`, load/results/soak-summary.json)")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        workdir = Path(tmp)
        print("== fault and race tests ==", flush=True)
        tests = run_tests(workdir)
        print("== short load run ==", flush=True)
        load = run_load(workdir, args.load_users, args.load_time)
    soak = json.loads(SOAK_SUMMARY.read_text()) if SOAK_SUMMARY.exists() else None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(tests, load, soak))
    print(f"wrote {args.output.relative_to(REPO)}")
    return 1 if tests["exit_code"] or load.get("exit_code") else 0


if __name__ == "__main__":
    sys.exit(main())
