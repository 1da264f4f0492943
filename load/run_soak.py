"""`make soak`: start a private native stack, run Locust headless against it, judge the run.

    uv run python load/run_soak.py                       # 30 users, 3 minutes
    uv run python load/run_soak.py --users 10 --run-time 30s --csv /tmp/quick

The stack is isolated (its own PostgreSQL, Redis and free ports) with the gateway's rate
limit on the credential routes lifted, since every simulated user registers and logs in
from the same address. Locust writes its CSV statistics under load/results/ (by default);
this script prints throughput and latency percentiles and exits non-zero if any request
failed, Locust reported an error, or a process of the stack died during the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.stack import Stack, StackConfig

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
DEFAULT_CSV = HERE / "results" / "soak"
DEFAULT_SUMMARY = HERE / "results" / "soak-summary.json"  # read by scripts/reliability_report.py

#: Every simulated user registers and logs in from 127.0.0.1: lift the per-address limit.
STACK_ENV = {"GATEWAY_AUTH_RATE_AVERAGE": "100000", "GATEWAY_AUTH_RATE_BURST": "100000"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=30, help="simulated users (default 30)")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users started per second")
    parser.add_argument("--run-time", default="3m", help="Locust duration, e.g. 30s, 3m")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="CSV prefix for Locust")
    parser.add_argument(
        "--summary-json", type=Path, default=DEFAULT_SUMMARY, help="the summary, as JSON"
    )
    return parser.parse_args(argv)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def read_stats(prefix: Path) -> list[dict[str, Any]]:
    """`<prefix>_final_stats.csv` (see the locustfile): per endpoint, plus `Aggregated`."""
    rows = []
    with Path(f"{prefix}_final_stats.csv").open(newline="") as stats:
        for row in csv.DictReader(stats):
            rows.append(
                {
                    "name": row["Name"],
                    "method": row["Type"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": round(_number(row["Requests/s"]), 1),
                    "p50": _number(row["50%"]),
                    "p95": _number(row["95%"]),
                    "p99": _number(row["99%"]),
                    "max": round(_number(row["Max Response Time"])),
                }
            )
    return rows


def read_problems(prefix: Path, kind: str) -> list[dict[str, str]]:
    """`<prefix>_final_failures.csv` or `_final_exceptions.csv`, one dict per line."""
    path = Path(f"{prefix}_final_{kind}.csv")
    if not path.exists():
        return []
    with path.open(newline="") as problems:
        return list(csv.DictReader(problems))


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    stack = Stack(StackConfig.isolated(extra_env=dict(STACK_ENV)))
    print("starting a private native stack…", flush=True)
    stack.start()
    try:
        pids_before = {name: p.process.pid for name, p in stack.processes.items() if p.process}
        command = [
            sys.executable, "-m", "locust",
            "-f", str(LOCUSTFILE),
            "--headless",
            "--host", stack.config.gateway_url,
            "--users", str(args.users),
            "--spawn-rate", str(args.spawn_rate),
            "--run-time", args.run_time,
            "--stop-timeout", "10",
            "--csv", str(args.csv),
            "--only-summary",
            "--loglevel", "WARNING",
        ]  # fmt: skip
        print(" ".join(command[1:]), flush=True)
        started = time.monotonic()
        locust = subprocess.run(command, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # noqa: S603 - our own argv
        seconds = time.monotonic() - started
        pids_after = {name: p.process.pid for name, p in stack.processes.items() if p.process}
        dead = stack.dead_processes()
    finally:
        stack.stop()
    rows = read_stats(args.csv)
    total = next(row for row in rows if row["name"] == "Aggregated")
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "locust_exit_code": locust.returncode,
        "dead_processes": dead,
        "restarted_processes": sorted(
            n for n in pids_before if pids_after.get(n) != pids_before[n]
        ),
        "total": total,
        "endpoints": [row for row in rows if row["name"] != "Aggregated"],
        "failures": read_problems(args.csv, "failures"),
        "exceptions": read_problems(args.csv, "exceptions"),
    }


def verdict(summary: dict[str, Any]) -> list[str]:
    """Why the run failed; empty when it passed."""
    problems = []
    if summary["total"]["failures"]:
        problems.append(f"{summary['total']['failures']} failed requests")
    if summary["exceptions"]:
        problems.append(f"{len(summary['exceptions'])} exceptions in the locustfile")
    if summary["locust_exit_code"] != 0:
        problems.append(f"locust exited with {summary['locust_exit_code']}")
    if summary["dead_processes"] or summary["restarted_processes"]:
        problems.append(f"processes died: {summary['dead_processes']}")
    if summary["total"]["requests"] == 0:
        problems.append("no request was made")
    return problems


def print_summary(summary: dict[str, Any]) -> None:
    total = summary["total"]
    print(
        f"\nsoak: {summary['users']} users for {summary['run_time']}: "
        f"{total['requests']} requests, {total['failures']} failures, "
        f"{total['rps']} req/s, p50 {total['p50']:.0f} ms, p95 {total['p95']:.0f} ms, "
        f"p99 {total['p99']:.0f} ms, max {total['max']} ms"
    )
    for failure in summary["failures"]:
        print(f"  failure: {failure}")
    for exception in summary["exceptions"]:
        print(f"  exception: {exception}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    print_summary(summary)
    args.summary_json.parent.mkdir(parents=True, exist_ok=True)
    args.summary_json.write_text(json.dumps(summary, indent=2))
    problems = verdict(summary)
    for problem in problems:
        print(f"soak FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
