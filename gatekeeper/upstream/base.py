"""The interface the proxy streams through: one method to send, a response to stream from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def body(self) -> AsyncIterator[bytes]: ...

    def abort(self) -> None:
        """The client went away: make body() stop and drop the connection to the app."""

    async def aclose(self) -> None: ...


class UpstreamTransport(Protocol):
    """The one method the proxy needs; swap implementations on measured evidence."""

    async def send(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
