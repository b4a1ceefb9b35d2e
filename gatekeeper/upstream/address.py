"""Where the app listens, parsed once at wiring (``upstream`` in the settings, already checked to
be ``http://HOST:PORT``) and handed as a value to the pool, the proxy, the WebSocket proxy and
the readiness probe."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    host: str  # for connecting: no brackets around an IPv6 address
    port: int
    netloc: str  # as written in the URL: the Host of a request that came without one
    websocket_base: str  # "ws://" + netloc: a handshake's URL is this + the target

    @classmethod
    def parse(cls, url: str) -> UpstreamAddress:
        parts = urlsplit(url)
        netloc = parts.netloc or "localhost"
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 80, netloc=netloc,
                   websocket_base="ws://" + netloc)
