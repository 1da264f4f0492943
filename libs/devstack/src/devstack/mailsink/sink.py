"""`MailSink`: SMTP in, Mailpit-compatible HTTP out, both in the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn

from devstack.mailsink.api import create_app
from devstack.mailsink.smtp import SmtpServer
from devstack.mailsink.store import MessageStore
from devstack.ports import bind_listener

__all__ = ["MailSink"]

_STARTUP_TIMEOUT = 10.0


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signals alone: whoever embeds the sink (pytest, our CLI)
    decides what Ctrl+C means, instead of uvicorn swallowing it until shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MailSink:
    """A local Mailpit stand-in: accepts any mail over SMTP, serves it over HTTP.

        async with MailSink(smtp_port=0, http_port=0) as sink:   # 0 = any free port
            send_mail(host="127.0.0.1", port=sink.smtp_port)
            messages = httpx.get(f"{sink.api_url}/api/v1/messages").json()

    Messages live in `sink.store` (in memory) and vanish when the sink stops.
    """

    def __init__(
        self,
        smtp_host: str = "127.0.0.1",
        smtp_port: int = 1025,
        http_host: str = "127.0.0.1",
        http_port: int = 8025,
        *,
        store: MessageStore | None = None,
    ) -> None:
        self.smtp_host = smtp_host
        self.http_host = http_host
        self._smtp_port = smtp_port
        self._http_port = http_port
        self.store = store if store is not None else MessageStore()
        self._smtp: SmtpServer | None = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None

    @property
    def smtp_port(self) -> int:
        """SMTP port; the real one once started, even if 0 was requested."""
        return self._smtp_port

    @property
    def http_port(self) -> int:
        """HTTP port; the real one once started, even if 0 was requested."""
        return self._http_port

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API, e.g. http://127.0.0.1:8025."""
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._http_task is not None

    async def start(self) -> None:
        """Bind both ports (raising `PortInUse` if taken) and serve until `stop()`."""
        if self.running:
            return
        # Binding ourselves gives a clear PortInUse (uvicorn would sys.exit) and lets
        # port 0 work: we read the chosen port back from the socket.
        smtp_sock = bind_listener(self.smtp_host, self._smtp_port)
        try:
            http_sock = bind_listener(self.http_host, self._http_port)
        except BaseException:
            smtp_sock.close()
            raise
        self._smtp_port = _bound_port(smtp_sock)
        self._http_port = _bound_port(http_sock)

        self._smtp = SmtpServer(self.store, smtp_sock)
        await self._smtp.start()

        config = uvicorn.Config(
            create_app(self.store),
            lifespan="off",
            log_config=None,  # an embedded server must not reconfigure the host's logging
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[http_sock]))
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT):
                while not self._http.started:
                    if self._http_task.done():
                        self._http_task.result()  # re-raise why it died
                        raise RuntimeError("mailsink HTTP server exited during startup")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop both servers and close open connections (messages are kept in `store`)."""
        if self._smtp is not None:
            await self._smtp.stop()
            self._smtp = None
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            # Nothing useful to do with a crash at shutdown; start() re-raises early ones.
            with contextlib.suppress(Exception):
                await self._http_task
        self._http = None
        self._http_task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
