"""TCP port helpers for the dev stack and for tests.

Servers in the dev stack bind fixed, well-known ports, and throwaway test servers bind
random free ones. Both fail in confusing ways when a port is taken (a half-started
process, a log line buried somewhere), so everything checks ports up front and raises
`PortInUse` with a message that says exactly which port is the problem.
"""

from __future__ import annotations

import errno
import socket

__all__ = [
    "PortInUse",
    "bind_listener",
    "ensure_port_free",
    "free_port",
    "free_ports",
    "port_is_listening",
]


class PortInUse(RuntimeError):
    """A TCP port we want to listen on is already taken by another socket."""


def _in_use(host: str, port: int) -> PortInUse:
    return PortInUse(f"port {port} on {host} is already in use")


def _family(host: str) -> socket.AddressFamily:
    """IPv6 literals contain a colon; everything else we bind is IPv4."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that is free right now on `host`.

    The OS picks it, so it never collides with a listening socket. Another process can
    still grab it before you bind it; for servers you run in-process prefer binding
    port 0 directly (see `bind_listener`) and reading the port back.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` ports free right now on `host`, all different.

    The sockets stay bound until every port is chosen: one at a time, the OS may hand the
    same port out twice, and a stack of a dozen servers would then start two on one port.
    """
    sockets = [socket.socket(_family(host), socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def bind_listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    """Bind and listen on `host:port`, raising `PortInUse` instead of a bare OSError.

    SO_REUSEADDR is set so a port freed by a server we just stopped (and whose closed
    connections linger in TIME_WAIT) can be reused at once, as fault-injection tests do.
    Pass port 0 to let the OS choose; read the result with `sock.getsockname()[1]`.
    """
    # proto=IPPROTO_TCP matters: asyncio only disables Nagle (TCP_NODELAY) on accepted
    # sockets whose proto says TCP, and multi-line replies (SMTP EHLO) otherwise stall
    # ~40 ms on delayed ACKs.
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _in_use(host, port) from exc
        raise
    return sock


def ensure_port_free(host: str, port: int) -> None:
    """Raise `PortInUse` if something already listens on `host:port`.

    Call it before launching an external server so the failure is immediate and names
    the port, rather than a timeout with the reason hidden in the server's log.
    """
    bind_listener(host, port).close()


def port_is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if a TCP connection to `host:port` succeeds (someone is listening)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
