"""``server.http`` chooses the protocol a real gatekeeper process runs: the one behaviour where
the two differ on purpose tells them apart (an answer sent before an expected body was asked
for: gatekeeper's own closes the connection, RFC 9110 §10.1.1; uvicorn's keeps it open)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from tests.conftest import Gatekeeper
from tests.support.attacks import address


def _refused_before_the_body(gk: Gatekeeper) -> bytes:
    with socket.create_connection(address(gk), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: gk.test\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")  # no token: 401, the body never asked for
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 65536:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


@pytest.mark.parametrize(("http", "closes"), [("gatekeeper", True), ("uvicorn", False)],
                         ids=["gatekeeper's own closes", "uvicorn's keeps the connection"])
def test_the_configured_protocol_is_the_one_that_answers(
        gatekeeper_factory: Callable[..., Gatekeeper], http: str, closes: bool) -> None:
    gk = gatekeeper_factory(server={"http": http})
    answer = _refused_before_the_body(gk)
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 401 ") and b"100 continue" not in answer.lower()
    assert (b"\r\nconnection: close" in head) == closes
