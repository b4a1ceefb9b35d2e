"""Header values are bytes, not text: whatever bytes a client puts in any header gatekeeper
reads — non-ASCII, split UTF-8, NUL, percent-escapes of them — gets a clear 4xx or the request
goes through, never a 500. (A later-version ``traceparent`` with a non-ASCII field once raised
UnicodeDecodeError in the trace reader; this table covers the class, with every feature that
reads a header switched on.)"""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import InProcess, serve
from tests.support.fakes import mint
from tests.support.upstream import create_upstream_app
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings

SPA = "https://spa.example"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Every header some stage reads (authentication, DPoP, certificates behind a proxy, forward-auth,
# the trusted proxy's forwarding, CORS, cookies, method override, tracing, request ids), plus a
# few only the app reads (stripped or passed on: either way never decoded as text by us).
HEADERS = [
    "authorization", "dpop", "cookie", "origin", "referer", "host", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-prefix",
    "forwarded", "x-real-ip", "x-original-uri", "x-original-method", "x-original-url",
    "x-forwarded-uri", "x-forwarded-method", "access-control-request-method",
    "access-control-request-headers", "x-request-id", "traceparent", "tracestate",
    "x-client-cert", "x-http-method-override", "x-method-override", "content-type",
    "sec-fetch-site", "sec-fetch-mode", "x-auth-request-user", "x-auth-request-jwt", "accept",
    "user-agent", "upgrade", "connection", "te", "x-requested-with", "if-none-match",
]

# What each value is made of; each is also tried after a well-formed prefix of the header's
# usual value (a parser that checks the head and decodes the rest is the bug this table finds).
HOSTILE = {
    "0xff": b"\xff",
    "lone continuation byte": b"\x80abc",
    "split UTF-8": b"\xc3",
    "UTF-8 text": "é ü 中".encode(),
    "NUL": b"a\x00b",
    "DEL and C1": b"\x7f\x85",
    "percent-escaped 0xff": b"%ff%C3",
    "percent-escaped NUL": b"%00",
}

PREFIX = {
    "authorization": b"Bearer ", "dpop": b"eyJ0eXAiOiJkcG9wK2p3dCJ9.", "cookie": b"_gatekeeper=",
    "origin": SPA.encode() + b"/", "referer": SPA.encode() + b"/", "host": b"gk.test",
    "x-forwarded-for": b"203.0.113.7, ", "x-forwarded-host": b"gk.test", "forwarded": b"for=",
    "x-original-uri": b"/api/p1/items?q=", "x-forwarded-uri": b"/api/p1/items?q=",
    "x-original-url": b"https://gk.test/api/", "x-original-method": b"GE",
    "access-control-request-headers": b"authorization,", "x-request-id": b"abc",
    "traceparent": f"01-{TRACE}-".encode(), "tracestate": b"rojo=00f067aa0ba902b7,",
    "x-client-cert": b"-----BEGIN%20CERTIFICATE-----", "content-type": b"application/json; charset=",
}


@pytest.fixture(scope="module")
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(
        policy=EXAMPLE_POLICY, trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "nginx"},
        cors=[{"paths": ["/api/*"], "allowed_origins": [SPA], "allowed_methods": ["GET", "PUT"],
               "allowed_headers": ["Authorization"], "allow_credentials": True}],
        auth={"dpop": {"enabled": True}, "client_certificate_header": "X-Client-Cert"})


def values_for(name: str) -> dict[str, bytes]:
    prefix = PREFIX.get(name, b"")
    out = {label: value for label, value in HOSTILE.items()}
    out |= {f"{label} after {prefix!r}": prefix + value for label, value in HOSTILE.items() if prefix}
    return out


@pytest.mark.parametrize("shape", ["sidecar", "in-process"])
@pytest.mark.parametrize("name", HEADERS)
def test_any_bytes_in_a_header_get_an_answer_never_a_500(
    settings: Settings, issuer: DevIssuer, upstream: Upstream, name: str, shape: str,
) -> None:
    token = mint(issuer, claims={"roles": ["viewer"]}).encode()

    async def scenario(gk: InProcess) -> list[str]:
        failures = []
        for label, value in values_for(name).items():
            hostile = (name.encode(), value)
            requests = {
                "proxied, a token": ("GET", b"/api/p1/items", [(b"authorization", b"Bearer " + token)]),
                "proxied, anonymous": ("GET", b"/public/x", []),
                "DPoP scheme": ("GET", b"/api/p1/items", [(b"authorization", b"DPoP " + token)]),
                "forward-auth check": ("GET", b"/oauth2/auth", [
                    (b"x-original-uri", b"/api/p1/items"), (b"x-original-method", b"GET"),
                    (b"authorization", b"Bearer " + token)]),
                "CORS preflight": ("OPTIONS", b"/api/p1/items", [
                    (b"origin", SPA.encode()), (b"access-control-request-method", b"PUT")]),
                "sign-in start": ("GET", b"/oauth2/start?rd=/api/p1/items", []),
            }
            for kind, (method, target, base) in requests.items():
                # The hostile copy replaces the request's own header of that name, and comes second
                # beside it too (a reader that takes the last value, or joins them).
                for headers in ([*(h for h in base if h[0] != hostile[0]), hostile], [*base, hostile]):
                    answer = await gk.http(method, target, headers=headers)
                    if answer.status >= 500:
                        failures.append(f"{kind}, {label}: {answer.status} {answer.body[:80]!r}")
        return failures

    inner = create_upstream_app(upstream.recorder) if shape == "in-process" else None
    assert serve(settings, scenario, inner=inner) == []
