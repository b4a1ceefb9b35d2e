"""A small, strict HTTP/1.1 client for the one upstream app: pooled keep-alive connections on
asyncio protocols, responses parsed by httptools (llhttp).

Why not httpx or aiohttp: measured on this machine (bench/RESULTS.md), their per-request CPU cost
dominates a proxied request. Being thin, this client must be strict itself:
- framing only by Content-Length, chunked, or (responses) read-until-close — llhttp refuses
  a response with both, duplicate lengths, or malformed chunks; we refuse any other
  Transfer-Encoding and a second response to one request (response splitting), then drop the
  connection;
- the request head is checked for stray CR/LF before it is written (no request splitting);
- a connect timeout, a per-read timeout (while a request body still flows, each write
  restarts the clock for the answer), a cap on open connections; a request waiting for the cap
  is handed the next connection that is released or closed;
- a connection is reused only after a complete, keep-alive response to a fully sent request;
  on any doubt it is closed.
"""

from gatekeeper.upstream.base import UpstreamResponse, UpstreamTransport
from gatekeeper.upstream.pool import Http1Pool

__all__ = ["Http1Pool", "UpstreamResponse", "UpstreamTransport"]
