"""Binding the listeners' sockets, and the per-connection bounds both listeners keep."""

from __future__ import annotations

import logging
import socket

from gatekeeper.server.limits import ConnectionLimits
from gatekeeper.settings import Settings, split_host_port

log = logging.getLogger("gatekeeper")


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The server's section: the per-connection bounds (config keys of the same names)."""
    return ConnectionLimits(
        max_request_line_bytes=settings.max_request_line_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        request_head_timeout_seconds=settings.request_head_timeout_seconds,
        keep_alive_timeout_seconds=settings.keep_alive_timeout_seconds,
        max_connections=settings.max_connections,
        request_body_timeout_seconds=settings.request_body_timeout_seconds,
        request_body_min_bytes_per_second=settings.request_body_min_bytes_per_second,
        send_timeout_seconds=settings.send_timeout_seconds,
    )


class BindError(Exception):
    """A listener's address cannot be bound: one line naming the key and the address."""

    def __init__(self, key: str, address: str, error: OSError) -> None:
        super().__init__(f"{key} {address}: cannot bind ({error.strerror or error})")


def bind_socket(address: str, *, key: str, reuse_port: bool = False) -> socket.socket:
    """Bound and inheritable (workers > 1 share it); BindError naming ``key`` if it cannot be."""
    host, port = split_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several workers each serve the admin port; the kernel spreads probes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(key, address, exc) from exc
    sock.set_inheritable(True)
    return sock


def bind_public_listener(settings: Settings) -> socket.socket | None:
    """``listen``, bound before the lifespan starts, so that "gatekeeper ready" is logged only
    once both listeners are bound (uvicorn would bind it after startup, then fail). None after
    logging why it cannot be bound."""
    try:
        return bind_socket(settings.listen, key="listen")
    except BindError as exc:
        log.error("startup failed", extra={"error": str(exc)})
        return None
