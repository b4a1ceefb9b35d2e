"""Bounded control-plane fetches: discovery, JWKS, token and userinfo calls to an issuer.

An issuer is a remote party gatekeeper does not control. httpx's timeouts are per operation (a
read that gets one byte every 2 s never times out), and it buffers a whole body, so an issuer
that drips, hangs or answers 400 MB could hold start-up, the refresh loop or a login for ever
and take the memory with it. Every call here has:

- a **total deadline** (connect to last byte) enforced with ``asyncio.timeout``, on top of
  httpx's own per-operation timeouts;
- a **size cap** on the body: a larger ``Content-Length`` is refused before reading, and the
  body is read in chunks and given up as soon as it passes the cap;
- ``Accept-Encoding: identity``, and a refusal of any encoded answer: the cap counts the bytes
  that are kept, so nothing may inflate after it (a gzip bomb);
- at most ``max_concurrent`` calls at a time per party (one ``ControlPlane`` per issuer or
  provider), waiting for a slot inside the deadline: a hung token endpoint cannot take every
  connection of the shared client (whose own pool is unbounded for that reason), so the other
  issuers' fetches never queue behind it.

Errors come out as ``FetchError`` whose text is safe to log and show in ``/readyz``: the URL
without credentials or query string. ``httpx`` stays behind this module for the control plane.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["ControlPlane", "FetchError", "Fetched", "safe_url"]


class FetchError(Exception):
    """A control-plane call failed; ``str()`` names why and where, nothing secret."""


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path``: no ``user:password@``, no query, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(malformed URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def raise_for_status(self) -> Fetched:
        if not 200 <= self.status < 300:
            raise FetchError(f"HTTP {self.status} from {safe_url(self.url)}")
        return self

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" thousands deep
            raise FetchError(f"the answer from {safe_url(self.url)} is not JSON") from exc


class ControlPlane:
    """The shared control-plane client, with a deadline and a size cap on every call."""

    def __init__(self, http: httpx.AsyncClient, *, deadline_seconds: float, max_bytes: int,
                 max_concurrent: int = 16) -> None:
        self._http = http
        self._deadline = deadline_seconds
        self._max_bytes = max_bytes
        self._slots = asyncio.Semaphore(max_concurrent)

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Fetched:
        return await self.call("GET", url, headers=headers)

    async def call(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   content: bytes | str | None = None) -> Fetched:
        sent = {**(headers or {}), "accept-encoding": "identity"}
        try:
            async with (
                asyncio.timeout(self._deadline),
                self._slots,
                self._http.stream(method, url, headers=sent, content=content,
                                  timeout=self._deadline) as response,
            ):
                body = await self._read(response, url)
                return Fetched(url, response.status_code, response.headers, body)
        except FetchError:
            raise
        except TimeoutError as exc:
            raise FetchError(f"no complete answer within {self._deadline:g} s from "
                             f"{safe_url(url)}") from exc
        except Exception as exc:
            # Any failure, not only httpx.HTTPError: InvalidURL, or an ExceptionGroup holding an
            # OverflowError for a port > 65535. Translated here, where httpx is used.
            raise FetchError(_describe(exc, url)) from exc

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchError(f"the answer from {safe_url(url)} is {encoding}-encoded; "
                             "identity was asked for")
        length = response.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self._max_bytes:
            raise FetchError(f"the answer from {safe_url(url)} is larger than "
                             f"{self._max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self._max_bytes:
                raise FetchError(f"the answer from {safe_url(url)} is larger than "
                                 f"{self._max_bytes} bytes")
        return bytes(body)


def _describe(exc: Exception, url: str) -> str:
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        inner: BaseException = exc.exceptions[0]  # anyio wraps a lone connect() error
        return f"{type(inner).__name__} fetching {safe_url(url)}"
    return f"{type(exc).__name__} fetching {safe_url(url)}"
