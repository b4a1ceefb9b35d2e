"""The header filters' memory of names (gatekeeper/mutate.py): what a name gets is worked out once
and kept, up to a bound a client cannot push past, and never changes what is forwarded. (What
is stripped and injected, in every spelling, is tests/unit/app/test_identity_headers.py and
tests/e2e/test_headers.py.)"""

from __future__ import annotations

import pytest

from gatekeeper.mutate import HeaderPolicy, strip_response_headers
from gatekeeper.request import RequestView
from gatekeeper.settings.headers import HeaderSettings

SETTINGS = HeaderSettings(headers={"X-Auth-Request-User": "sub"}, pass_access_token=False,
                          pass_authorization_header=False, trusted_proxies=("10.0.0.0/8",),
                          session_cookie="_gatekeeper")
IDENTITY = [(b"X-Auth-Request-User", b"alice")]


def _request(headers: list[tuple[bytes, bytes]], client: str = "192.0.2.1") -> RequestView:
    return RequestView({"method": "GET", "path": "/", "raw_path": b"/", "headers": headers,
                        "client": (client, 1234), "scheme": "https"}, "/")


def _forwarded(policy: HeaderPolicy, headers: list[tuple[bytes, bytes]],
               client: str = "192.0.2.1") -> list[tuple[bytes, bytes]]:
    return policy.upstream_headers(_request(headers, client), IDENTITY, "rid-0123456789", b"app:80")


def test_a_client_inventing_names_is_filtered_right_and_grows_no_memory_past_the_bound() -> None:
    policy = HeaderPolicy(SETTINGS)
    for batch in range(50):  # 5,000 made-up names over 50 requests
        names = [f"x-app-{batch}-{i}".encode() for i in range(50)]
        spoofs = [f"x_forwarded_{batch}-{i}".encode() for i in range(50)]  # folds to x-forwarded-*
        out = _forwarded(policy, [*((n, b"1") for n in names), *((n, b"6.6.6.6") for n in spoofs)])
        client_names = [name for name, _ in out[1:-5]]  # after host, before ours
        assert client_names == names
    assert len(policy._kinds) <= 1024


@pytest.mark.parametrize(("headers", "client"), [
    ([(b"host", b"a.test"), (b"x-foo", b"1"), (b"connection", b"x-foo, keep-alive")], "192.0.2.1"),
    ([(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-proto", b"http"),
      (b"connection", b"x_forwarded_for")], "10.1.2.3"),
    ([(b"cookie", b"_gatekeeper=abc; theme=dark"), (b"authorization", b"Bearer t"),
      (b"x-auth-request-user", b"mallory"), (b"host", b"first.test"), (b"host", b"second.test")],
     "10.1.2.3"),
], ids=["Connection names a client header", "Connection names a trusted proxy's X-Forwarded-For",
        "session cookie, token, spoofed identity and two Hosts"])
def test_the_second_request_with_the_same_names_is_forwarded_as_the_first(
    headers: list[tuple[bytes, bytes]], client: str,
) -> None:
    policy = HeaderPolicy(SETTINGS)
    first = _forwarded(policy, headers, client)
    assert _forwarded(policy, headers, client) == first
    assert _forwarded(HeaderPolicy(SETTINGS), headers, client) == first


RESPONSES = [
    ("nginx's plain answer", [(b"Server", b"nginx"), (b"Date", b"Mon, 07 Dec 2026 20:00:00 GMT"),
                              (b"Content-Type", b"text/plain"), (b"Content-Length", b"3"),
                              (b"Connection", b"keep-alive")]),
    ("Connection names two of the app's headers", [
        (b"connection", b"X-Secret-Hop, x_other"), (b"X-Secret-Hop", b"1"), (b"X.Other", b"2"),
        (b"X-Kept", b"3")]),
    ("hop-by-hop and ours in odd spellings", [
        (b"Keep_Alive", b"timeout=5"), (b"TRANSFER-ENCODING", b"chunked"),
        (b"X-Request-ID", b"app's"), (b"date", b"x"), (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2")]),
    ("nothing", []),
]


@pytest.mark.parametrize("headers", [h for _, h in RESPONSES], ids=[n for n, _ in RESPONSES])
def test_the_proxy_s_response_filter_strips_what_strip_response_headers_strips(
    headers: list[tuple[bytes, bytes]],
) -> None:
    policy = HeaderPolicy(SETTINGS)
    expected = strip_response_headers(headers)
    assert policy.response_headers(headers) == expected
    assert policy.response_headers(headers) == expected  # the names now known


@pytest.mark.parametrize("client", ["192.0.2.1", "10.0.0.5"], ids=["untrusted peer", "trusted proxy"])
@pytest.mark.parametrize("name", [b"tls-client-cert", b"tls_client_cert", b"tls.client.cert"],
                         ids=lambda n: n.decode())
def test_the_forwarded_client_certificate_header_never_reaches_the_app(
        name: bytes, client: str) -> None:
    """``auth.client_certificate_header`` (authn/certbound.py) is gatekeeper's to read: an app
    that read it would take a client's word for a certificate, from any peer, in any spelling."""
    policy = HeaderPolicy(HeaderSettings(
        headers={"X-Auth-Request-User": "sub"}, pass_access_token=False,
        pass_authorization_header=False, trusted_proxies=("10.0.0.0/8",),
        session_cookie=None, certificate_header="Tls-Client-Cert"))
    forwarded = _forwarded(policy, [(name, b"-----BEGIN%20CERTIFICATE-----")], client)
    assert not [n for n, _ in forwarded if n.lower().replace(b"_", b"-").replace(b".", b"-")
                == b"tls-client-cert"]
