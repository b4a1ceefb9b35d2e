"""An issuer that misbehaves at the HTTP level, as a process of its own on 127.0.0.1.

    python -m tests.support.hostile_issuer --port 8123 --mode drip

Every request (discovery, JWKS, token, userinfo: the path does not matter) is answered the
same way, on a raw socket so nothing in between smooths it out:

    drip          200 with Content-Length 4096, then one byte every 0.5 s: each read is quick,
                  the answer never ends
    hang          reads the request and never answers
    huge          200 with Content-Length 400 MB, the body sent as fast as the peer reads it
    huge-chunked  the same 400 MB, chunked: no length announced up front
    gzip-bomb     200, Content-Encoding: gzip: about 200 KB that inflate to 200 MB of zeros
    deep-json     200, a JSON array nested 200,000 deep ("[[[[…")

It counts requests and prints one line per request to stdout (``request <n> <path>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import zlib

HUGE = 400 * 1024 * 1024
CHUNK = b" " * (1024 * 1024)  # JSON whitespace: a prefix a lenient reader would keep reading


def _gzip_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = b"\0" * (1024 * 1024)
    out = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(out) + compressor.flush()


class Hostile:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self._bomb = _gzip_zeros(200 * 1024 * 1024) if mode == "gzip-bomb" else b""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            path = head.split(b" ", 2)[1].decode("latin-1", "replace")
            print(f"request {self.requests} {path}", flush=True)
            await getattr(self, "_" + self.mode.replace("-", "_"))(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4096\r\n\r\n{")
        await writer.drain()
        for _ in range(4095):
            await asyncio.sleep(0.5)
            writer.write(b" ")
            await writer.drain()

    async def _hang(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % HUGE)
        for _ in range(HUGE // len(CHUNK)):
            writer.write(CHUNK)
            await writer.drain()

    async def _huge_chunked(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        frame = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
        for _ in range(HUGE // len(CHUNK)):
            writer.write(frame)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _gzip_bomb(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(self._bomb) + self._bomb)
        await writer.drain()

    async def _deep_json(self, writer: asyncio.StreamWriter) -> None:
        body = b"[" * 200_000 + b"]" * 200_000
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()


async def main(port: int, mode: str) -> None:
    hostile = Hostile(mode)
    server = await asyncio.start_server(hostile.serve, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening {port} {mode}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True,
                        choices=["drip", "hang", "huge", "huge-chunked", "gzip-bomb", "deep-json"])
    args = parser.parse_args()
    asyncio.run(main(args.port, args.mode))
