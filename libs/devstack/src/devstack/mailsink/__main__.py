"""CLI: python -m devstack.mailsink [--smtp-host H] [--smtp-port P] [--http-host H] [--http-port P]

Prints one line when both ports accept connections, then runs until SIGINT/SIGTERM:
    mailsink ready smtp://127.0.0.1:1025 http://127.0.0.1:8025
Exits with status 1 and a one-line error if a port is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from devstack.mailsink.sink import MailSink
from devstack.mailsink.store import MessageStore
from devstack.ports import PortInUse


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.mailsink",
        description="SMTP sink with Mailpit's HTTP API (messages kept in memory).",
    )
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument(
        "--max-messages", type=int, default=5000, help="keep at most this many; 0 = no limit"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sink = MailSink(
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        http_host=args.http_host,
        http_port=args.http_port,
        store=MessageStore(max_messages=args.max_messages),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sink:
        smtp_host = f"[{sink.smtp_host}]" if ":" in sink.smtp_host else sink.smtp_host
        print(f"mailsink ready smtp://{smtp_host}:{sink.smtp_port} {sink.api_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except PortInUse as exc:
        print(f"mailsink: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
