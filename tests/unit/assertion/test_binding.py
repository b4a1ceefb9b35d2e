"""The request binding (gatekeeper/assertion/binding.py): the target hashed is exactly the one
the app receives on its request line (edge/proxy.py ``upstream_target``), query included."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gatekeeper.assertion.binding import request_binding, request_target
from gatekeeper.edge.proxy import upstream_target
from gatekeeper.paths import canonical_path
from gatekeeper.request import RequestView

TARGETS = [
    ("/orders/7", "a canonical path"),
    ("/orders/7?expand=items&x=%20", "a query, byte for byte"),
    ("/a/./b/../c//d", "dot segments and double slashes: the canonical path"),
    ("/%61dmin/x?", "an encoded unreserved character and an empty query"),
    ("/caf%C3%A9/menu?q=%C3%A9", "percent-encoded UTF-8"),
]


@pytest.mark.parametrize("target", [t for t, _ in TARGETS],
                         ids=[f"{why}: what the app receives" for _, why in TARGETS])
def test_the_bound_target_is_the_one_forwarded_to_the_app(target: str) -> None:
    raw, _, query = target.partition("?")
    scope = {"method": "GET", "path": raw, "raw_path": raw.encode(), "query_string": query.encode(),
             "headers": [], "client": ("127.0.0.1", 1)}
    view = RequestView(scope, canonical_path(raw.encode()))
    assert request_target(view.path, view.query) == upstream_target(view)


def test_the_binding_is_the_documented_hash_of_the_request_line() -> None:
    line = b"GET /orders/7?expand=items"
    assert len(line) == 26  # as binding.py's docstring counts it
    expected = base64.urlsafe_b64encode(hashlib.sha256(line).digest()).rstrip(b"=").decode()
    assert request_binding("GET", b"/orders/7?expand=items") == expected
    assert "=" not in expected and len(expected) == 43
