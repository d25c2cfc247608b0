"""The ports of one server: claimed before any worker starts, so no second server shares them.

Workers bind the gRPC port with ``SO_REUSEPORT`` so that they can share it; without a claim,
a second server started on the same port (any repo, any tokens) would silently share it
too and answer some of the first one's callers. So the server first takes an exclusive lock
named after the port (``<temp dir>/frost-serve-<port>.lock``, held until it exits, however
it exits), then checks that nothing else listens there (a bind without ``SO_REUSEPORT``);
the metrics port is checked the same way. Either failing is a ``ConfigError`` naming the
port: exit 2, one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from frost.errors import ConfigError
from frost.serving._config import ServeSettings

__all__ = ["PortClaim", "claim_ports"]


@dataclass
class PortClaim:
    """The lock file that keeps a server's gRPC port its own."""

    port: int
    path: Path
    fd: int


@contextlib.contextmanager
def claim_ports(settings: ServeSettings) -> Iterator[PortClaim]:
    """Claim the gRPC port (lock, then check) and check the metrics port; ``ConfigError``
    naming the port when another server or process has it."""
    claim = _lock(settings.port)
    try:
        _check_free(settings.host, settings.port, "port", "--port")
        if settings.metrics_port:
            _check_free("0.0.0.0", settings.metrics_port, "metrics port", "--metrics-port")
        yield claim
    finally:
        os.close(claim.fd)


def _lock(port: int) -> PortClaim:
    path = Path(tempfile.gettempdir()) / f"frost-serve-{port}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise ConfigError(f"port {port}: cannot lock {path}: {exc}") from exc
        raise ConfigError(
            f"port {port} is already served by another frost serve (pid {holder}): stop it, "
            "or choose another --port (a new version takes over with a rolling restart: "
            "SIGUSR2 to the running server)"
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return PortClaim(port, path, fd)


def _check_free(host: str, port: int, what: str, flag: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"{what} {port} on {host} is in use by another process ({exc.strerror or exc}): "
            f"stop it or choose another {flag}"
        ) from exc
    finally:
        probe.close()


def stop_listening(port: int) -> int:
    """Stop this process's listening sockets on ``port`` from taking connections: they
    leave the port's ``SO_REUSEPORT`` group, so new connections go to the other workers,
    and connections not yet accepted are reset (clients retry them elsewhere). The number
    of sockets stopped."""
    stopped = 0
    for sock in _sockets(port):
        with sock:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)
                    stopped += 1
    return stopped


def open_connections(port: int) -> int:
    """Connections this process holds that clients opened to ``port``."""
    count = 0
    for sock in _sockets(port):
        with sock:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                with contextlib.suppress(OSError):
                    sock.getpeername()
                    count += 1
    return count


def _sockets(port: int) -> Iterator[socket.socket]:
    """This process's TCP sockets bound to ``port`` (duplicates: close them)."""
    for entry in os.scandir("/proc/self/fd"):
        try:
            if not str(Path(entry.path).readlink()).startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(entry.name)))
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.getsockname()[1] == port:
                yield sock
                continue
        except (OSError, IndexError, TypeError):
            pass
        sock.close()
