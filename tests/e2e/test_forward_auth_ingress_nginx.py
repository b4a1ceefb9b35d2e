"""Forward-auth as ingress-nginx asks it, behind a real nginx: the client's Host is in the URI.

ingress-nginx's external-auth location sends ``X-Original-URL: $scheme://$http_host$request_uri``
(docs/forward-auth.md: ``proxy: custom``, ``uri_header: X-Original-URL``). ``$http_host`` is the
client's Host header, and nginx accepts ``app.example:80?`` there while routing it as
``app.example``: gatekeeper must never take a '?' or '#' from the Host as the end of the path.
The invariant is checked from the recording upstream: nothing the policy denies an anonymous
caller (everything but ``/`` and ``/public/*``) reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Gatekeeper, Upstream
from tests.e2e.test_policy_bypass import app_reading
from tests.support.nginx import run_nginx, status_of
from tests.support.policy import copy_default_policy
from tests.support.servers import free_port
from tests.support.upstream import RecordedRequest


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper],
               tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    return gatekeeper_factory(
        trusted_proxies=["127.0.0.1/32"], public_paths=["/", "/public/*"],
        forward_auth={"proxy": "custom", "uri_header": "X-Original-URL",
                      "method_header": "X-Original-Method"},
        policy=copy_default_policy(tmp_path_factory.mktemp("policies"),
                                   extra_rules="p, anonymous, /, GET|HEAD, allow\n"))


@pytest.fixture(scope="module")
def nginx(gatekeeper: Gatekeeper, upstream: Upstream,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx with ingress-nginx's external-auth headers; only Host app.example reaches the app."""
    port, prefix = free_port(), tmp_path_factory.mktemp("nginx")
    servers = f"""    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        return 404;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name app.example;
        location / {{
            auth_request /_external-auth;
            proxy_pass http://127.0.0.1:{upstream.port};
        }}
        location = /_external-auth {{
            internal;
            proxy_pass http://{gatekeeper.config["listen"]}/oauth2/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
        }}
    }}"""
    with run_nginx(servers, prefix, port):
        yield port


def send(port: int, upstream: Upstream, target: bytes, host: bytes,
         ) -> tuple[int, list[RecordedRequest]]:
    before = len(upstream.recorder)
    data = b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    status = status_of(port, data)
    return status, list(upstream.recorder.requests[before:])


HOSTS = [b"app.example:80?", b"app.example:443?x=", b"app.example:80#", b"app.example:?",
         b"app.example:80@evil", b"app.example:80\\"]


@pytest.mark.parametrize("host", HOSTS, ids=[h.decode() for h in HOSTS])
def test_a_host_header_cannot_move_the_path_into_the_query(nginx: int, upstream: Upstream,
                                                           host: bytes) -> None:
    status, forwarded = send(nginx, upstream, b"/admin/x", host)
    for record in forwarded:
        reading = app_reading(record.path)
        assert reading == "/" or reading.startswith("/public/"), (
            f"Host {host!r}: the app received {record.raw_path!r}")
    if not forwarded:
        assert status >= 400


def test_the_ingress_recipe_still_serves_what_the_policy_allows(nginx: int,
                                                                upstream: Upstream) -> None:
    for host in (b"app.example", b"app.example:80"):
        status, forwarded = send(nginx, upstream, b"/public/x", host)
        assert status == 200 and [r.path for r in forwarded] == ["/public/x"]
    status, forwarded = send(nginx, upstream, b"/admin/x", b"app.example")
    assert status == 401 and forwarded == []
