"""Who sent a request and which host it named (gatekeeper/peers.py): the host a tenant is taken
from is the one the app is told about, and a client that is not a trusted proxy never chooses it
with X-Forwarded-Host."""

from __future__ import annotations

import pytest

from gatekeeper.mutate import HeaderPolicy
from gatekeeper.peers import HostUnclear, forwarded_client, forwarded_host
from gatekeeper.request import RequestView
from gatekeeper.settings.headers import HeaderSettings

SETTINGS = HeaderSettings(headers={"X-Auth-Request-User": "sub"}, pass_access_token=False,
                          pass_authorization_header=False, trusted_proxies=("10.0.0.0/8",),
                          session_cookie="_gatekeeper")
HEADERS = HeaderPolicy(SETTINGS)
PROXY, CLIENT = "10.0.0.2", "203.0.113.9"


def request(headers: list[tuple[bytes, bytes]], client: str = CLIENT) -> RequestView:
    return RequestView({"method": "GET", "path": "/", "raw_path": b"/", "headers": headers,
                        "client": (client, 1234), "scheme": "https"}, "/")


HOSTS = [
    ("the Host header", CLIENT, [(b"host", b"acme.example.com")], "acme.example.com"),
    ("lower-cased, port and trailing dot dropped", CLIENT, [(b"host", b"ACME.Example.com.:8443")],
     "acme.example.com"),
    ("a client's X-Forwarded-Host is not believed", CLIENT,
     [(b"host", b"acme.example.com"), (b"x-forwarded-host", b"globex.example.com")],
     "acme.example.com"),
    ("a trusted proxy's X-Forwarded-Host is", PROXY,
     [(b"host", b"internal:80"), (b"x-forwarded-host", b"globex.example.com")], "globex.example.com"),
    ("a trusted proxy's Host without X-Forwarded-Host", PROXY, [(b"host", b"acme.example.com")],
     "acme.example.com"),
    ("X-Forwarded-Host that Connection names is dropped: Host", PROXY,
     [(b"host", b"acme.example.com"), (b"x-forwarded-host", b"globex.example.com"),
      (b"connection", b"x-forwarded-host")], "acme.example.com"),
    ("an IPv6 literal keeps its brackets", CLIENT, [(b"host", b"[2001:db8::1]:443")], "[2001:db8::1]"),
]


@pytest.mark.parametrize(("peer", "headers", "expected"), [h[1:] for h in HOSTS],
                         ids=[h[0] for h in HOSTS])
def test_the_host_decided_is_the_one_the_app_is_told(
    peer: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    view = request(headers, peer)
    assert forwarded_host(view, HEADERS.is_trusted) == expected
    # What gatekeeper forwards as X-Forwarded-Host (the app's Host is gatekeeper's upstream).
    sent = dict(HEADERS.upstream_headers(view, [], "rid-0123456789", b"app:80"))
    told = sent[b"x-forwarded-host"].decode().lower().rpartition(":")
    told_host = told[0] if told[1] and not told[2].endswith("]") else "".join(told)
    assert told_host.removesuffix(".") == expected


@pytest.mark.parametrize(("peer", "headers", "code"), [
    (CLIENT, [(b"host", b"a.example.com"), (b"host", b"b.example.com")], "ambiguous_host"),
    (PROXY, [(b"host", b"x"), (b"x-forwarded-host", b"a.example.com"),
             (b"x-forwarded-host", b"b.example.com")], "ambiguous_host"),
    (PROXY, [(b"host", b"x"), (b"x-forwarded-host", b"a.example.com, b.example.com")], "bad_host"),
    (CLIENT, [], "no_host"),
    (CLIENT, [(b"host", b"user@a.example.com")], "bad_host"),
    (CLIENT, [(b"host", b"a%2eexample.com")], "bad_host"),
], ids=["two Host headers", "two X-Forwarded-Host from a proxy", "a list", "no host",
        "userinfo", "a percent-escape"])
def test_a_host_that_is_not_one_is_refused_with_a_code(
    peer: str, headers: list[tuple[bytes, bytes]], code: str
) -> None:
    with pytest.raises(HostUnclear) as caught:
        forwarded_host(request(headers, peer), HEADERS.is_trusted)
    assert caught.value.code == code


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    (CLIENT, [b"192.0.2.7"], CLIENT),
    (PROXY, [b"6.6.6.6, 192.0.2.7"], "192.0.2.7"),
    ("::ffff:192.0.2.4", [], "192.0.2.4"),
    (PROXY, [b"[2001:db8::99]:443"], "2001:db8::99"),
], ids=["an untrusted peer's forwarded-for is ignored", "the hop the trusted proxy appended",
        "an IPv4-mapped peer is IPv4", "a bracketed IPv6 hop, whole (not its /64)"])
def test_the_client_address(peer: str, forwarded: list[bytes], expected: str) -> None:
    headers = [(b"x-forwarded-for", value) for value in forwarded]
    assert forwarded_client(request(headers, peer), HEADERS.is_trusted) == expected
