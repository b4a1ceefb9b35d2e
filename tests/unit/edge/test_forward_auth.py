"""The forward-auth header reader: exactly one configured source, or 400 (in process)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gatekeeper.edge.forward_auth import ForwardAuth, split_uri
from gatekeeper.errors import BadRequest
from gatekeeper.exchange import Exchange
from gatekeeper.headernames import fold
from gatekeeper.paths import canonical_path
from gatekeeper.settings import Settings
from gatekeeper.settings.forward_auth import (
    METHOD_CARRIERS,
    PROXY_SOURCES,
    URI_CARRIERS,
    ForwardAuthSettings,
)

Headers = list[tuple[str, str]]


def reader(proxy: str = "nginx", *, trusted: bool = True, **keys: Any) -> ForwardAuth:
    settings = ForwardAuthSettings(proxy=proxy, **keys)
    return ForwardAuth(settings, lambda peer: trusted and peer == "127.0.0.1")


def original(fa: ForwardAuth, scope: dict[str, Any]) -> Exchange:
    return fa.original(scope, "test-request", 0.0)


def scope_of(headers: Headers, path: str = "/oauth2/auth", method: str = "GET",
             query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": query, "client": ("127.0.0.1", 1),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]}


def ask(headers: Headers, proxy: str = "nginx", **keys: Any) -> tuple[str, str, bytes]:
    view = original(reader(proxy, trusted=True, **keys), scope_of(headers))
    return view.method, view.path, view.query


def refused(headers: Headers, proxy: str = "nginx", **keys: str) -> str:
    with pytest.raises(BadRequest) as caught:
        ask(headers, proxy, **keys)
    return caught.value.code


NGINX = [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET")]

READ = [
    ("nginx", {}, NGINX, ("GET", "/public/x", b"")),
    ("traefik", {}, [("X-Forwarded-Uri", "/api/a?x=1"), ("X-Forwarded-Method", "POST")],
     ("POST", "/api/a", b"x=1")),
    ("caddy", {}, [("X-Forwarded-Uri", "/a/%62/caf%c3%a9?q"), ("X-Forwarded-Method", "DELETE")],
     ("DELETE", "/a/b/caf%C3%A9", b"q")),
    ("custom", {"uri_header": "X-Original-URL", "method_header": "X-Original-Method"},
     [("X-Original-URL", "https://app.example:8443/api?q=1"), ("X-Original-Method", "PUT")],
     ("PUT", "/api", b"q=1")),
    ("nginx", {}, [*NGINX, ("X-Forwarded-Uri", "/public/x")], ("GET", "/public/x", b"")),
    ("nginx", {}, [*NGINX, ("X-HTTP-Method-Override", "GET")], ("GET", "/public/x", b"")),
]


@pytest.mark.parametrize(("proxy", "keys", "headers", "expected"), READ, ids=[
    "nginx reads X-Original-URI and X-Original-Method",
    "traefik reads X-Forwarded-Uri and X-Forwarded-Method, query apart",
    "caddy reads the same and the path is canonicalized",
    "custom reads an absolute-form X-Original-URL (ingress-nginx)",
    "another carrier that agrees is no conflict",
    "a method override that agrees is no conflict"])
def test_the_configured_source_is_read(proxy: str, keys: dict[str, str], headers: Headers,
                                       expected: tuple[str, str, bytes]) -> None:
    assert ask(headers, proxy, **keys) == expected


REFUSED = [
    ([("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Method", "GET")], "no_original_uri"),
    ([("X-Original-URI", "/api"), ("X-Original-URI", "/public/x"), ("X-Original-Method", "GET")],
     "duplicate_original_uri"),
    ([("X-Original-URI", "/public/x"), ("X-Original-URI", "/public/x"),
      ("X-Original-Method", "GET")], "duplicate_original_uri"),
    ([("X-Original-URI", ""), ("X-Original-Method", "GET")], "no_original_uri"),
    ([("X-Original-URI", "/public/x")], "no_original_method"),
    ([*NGINX, ("X-Original-Method", "DELETE")], "duplicate_original_method"),
    ([("X-Original-URI", "/admin"), ("X-Original-Method", "GET"), ("X-Forwarded-Uri", "/public/x")],
     "conflicting_original_uri"),
    ([*NGINX, ("X-Original-URL", "/admin")], "conflicting_original_uri"),
    ([*NGINX, ("X_Forwarded_Uri", "/admin")], "conflicting_original_uri"),
    ([*NGINX, ("x.original.uri", "/admin")], "conflicting_original_uri"),
    ([*NGINX, ("X-Rewrite-Url", "/admin")], "conflicting_original_uri"),
    ([*NGINX, ("X-HTTP-Method-Override", "DELETE")], "conflicting_original_method"),
    ([*NGINX, ("x_http_method_override", "DELETE")], "conflicting_original_method"),
    ([*NGINX, ("X-Forwarded-Method", "POST")], "conflicting_original_method"),
    ([("X-Original-URI", "/public/x"), ("X-Original-Method", "get")], "bad_original_method"),
    ([("X-Original-URI", "/public/x"), ("X-Original-Method", "PROPFIND")], "bad_original_method"),
    ([("X-Original-URI", "/public/x"), ("X-Original-Method", "GET, DELETE")],
     "bad_original_method"),
    ([("X-Original-URI", "/public/x#/../../admin"), ("X-Original-Method", "GET")],
     "malformed_target"),
    ([("X-Original-URI", "/public/x?a=1#frag"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/x?a b"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/x?a=\x7f"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/x?a=\xe9"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/x?a=\x01"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/x, /admin"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/[x]"), ("X-Original-Method", "GET")], "malformed_target"),
    ([("X-Original-URI", "/public/%2e%2e/admin"), ("X-Original-Method", "GET")],
     "malformed_target"),
    ([("X-Original-URI", "/public/x;/../../admin"), ("X-Original-Method", "GET")],
     "malformed_target"),
    *[([("X-Original-URI", uri), ("X-Original-Method", "GET")], "malformed_target") for uri in (
        "/admin/../public/x", "/admin/x/../../public/x", "/admin/./x", "/public/x/.",
        "/public/x/..", "/admin//../public/x", "/public//x", "/a/b//")],
    ([("X-Original-URI", "/public/x?_method=DELETE"), ("X-Original-Method", "POST")],
     "method_override"),
    ([("X-Original-URI", "//evil.example/public/x"), ("X-Original-Method", "GET")],
     "bad_original_uri"),
    ([("X-Original-URI", "http://user@evil.example/public/x"), ("X-Original-Method", "GET")],
     "bad_original_uri"),
    ([("X-Original-URI", "ftp://host/public/x"), ("X-Original-Method", "GET")], "bad_original_uri"),
    ([("X-Original-URI", "public/x"), ("X-Original-Method", "GET")], "bad_original_uri"),
    ([("X-Original-URI", "http://host//evil/x"), ("X-Original-Method", "GET")], "bad_original_uri"),
]


@pytest.mark.parametrize(("headers", "code"), REFUSED, ids=[
    "another proxy's header is not read",
    "the configured header twice",
    "the configured header twice, even alike",
    "an empty URI",
    "no method header: never a default GET",
    "the method header twice",
    "a client's X-Forwarded-Uri next to nginx's X-Original-URI",
    "a client's X-Original-URL",
    "X_Forwarded_Uri folds to the same name",
    "x.original.uri folds to the configured name",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override that differs",
    "x_http_method_override that differs",
    "X-Forwarded-Method that differs",
    "a lower-case method",
    "an unknown method",
    "comma-joined methods",
    "a raw # in the path",
    "a raw # in the query",
    "a raw space in the query",
    "a DEL in the query",
    "a non-ASCII byte in the query",
    "a control byte in the query",
    "comma-joined URIs",
    "raw [ ] in the path",
    "an encoded dot segment",
    "a ; parameter",
    *[f"{s} (the app routes it as sent)" for s in (
        "dot-dot out of /admin", "two dot-dots out of /admin", "a dot segment",
        "a trailing dot segment", "a trailing dot-dot", "an empty segment eaten by dot-dot",
        "an empty segment", "a trailing empty segment")],
    "a _method override in the query",
    "a scheme-relative //host",
    "userinfo in an absolute URI",
    "a scheme other than http(s)",
    "not a path",
    "an absolute URI whose path starts //"])
def test_an_ambiguous_check_is_refused(headers: Headers, code: str) -> None:
    assert refused(headers) == code


INGRESS = {"uri_header": "X-Original-URL", "method_header": "X-Original-Method"}


# ingress-nginx sets X-Original-URL to $scheme://$http_host$request_uri: the Host is the
# client's, and nginx accepts '?', '#', '@' and anything after a ':' in it (only '/', NUL,
# controls and space are refused) while still routing by the name before the ':'.
@pytest.mark.parametrize("host", ["app.example:80?", "app.example?", "app.example:443?x=",
                                  "app.example:80#", "app.example:?", "app.example@evil",
                                  "app.example:80\\", "[::1]:80?"])
def test_a_client_written_host_cannot_end_the_path_of_an_absolute_uri(host: str) -> None:
    uri = f"http://{host}/admin/x"
    try:
        _, path, _ = ask([("X-Original-URL", uri), ("X-Original-Method", "GET")], "custom",
                              **INGRESS)
    except BadRequest as refused:
        assert refused.code == "bad_original_uri"
        return
    assert path == "/admin/x", f"{uri} was decided as {path}"


def test_envoy_reads_the_check_requests_own_target_and_method() -> None:
    fa = reader("envoy")
    scope = scope_of([], path="/oauth2/auth/api/%78", method="PATCH", query=b"q=1")
    assert fa.handles(scope)
    view = original(fa, scope)
    assert (view.method, view.path, view.query) == ("PATCH", "/api/x", b"q=1")
    with pytest.raises(BadRequest, match="dot segment"):  # Envoy forwards it as sent
        original(fa, scope_of([], path="/oauth2/auth/admin/../api/x"))
    with pytest.raises(BadRequest, match="disagrees"):
        original(fa, scope_of([("X-Forwarded-Uri", "/public/x")], path="/oauth2/auth/admin"))
    with pytest.raises(BadRequest, match="no original path"):
        original(fa, scope_of([], path="/oauth2/auth"))


def test_only_envoy_owns_the_paths_below_oauth2_auth() -> None:
    assert not reader("nginx").handles(scope_of([], path="/oauth2/auth/x"))
    assert reader("nginx").handles(scope_of([], path="/oauth2/auth"))


def test_an_untrusted_peer_is_refused_before_anything_is_read() -> None:
    with pytest.raises(BadRequest) as caught:
        original(reader(trusted=False), scope_of(NGINX))
    assert caught.value.code == "untrusted_forward_auth"


BAD_SETTINGS = [
    ({"proxy": "custom", "uri_header": "X-Uri"}, "needs both"),
    ({"proxy": "nginx", "uri_header": "X-Uri"}, "need proxy: custom"),
    ({"proxy": "custom", "uri_header": "X Uri", "method_header": "X-M"}, "not a valid header name"),
    ({"proxy": "custom", "uri_header": "X_Uri", "method_header": "X-M"}, "not a valid header name"),
    ({"proxy": "custom", "uri_header": "X-A", "method_header": "x-a"}, "fold to the same name"),
    ({"proxy": "haproxy"}, "proxy"),
    ({"proxy": "custom", "uri_header": "X-HTTP-Method", "method_header": "X-M"}, "is a method header"),
    ({"proxy": "custom", "uri_header": "X-U", "method_header": "X-Original-URL"}, "is a URI header"),
]


@pytest.mark.parametrize(("section", "message"), BAD_SETTINGS, ids=[
    "custom without a method header", "a header without custom", "a space in a name",
    "an underscore in a name", "one name for both", "an unknown proxy",
    "a method carrier as the URI header", "a URI carrier as the method header"])
def test_a_bad_forward_auth_section_is_refused_naming_the_key(section: dict[str, str],
                                                              message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(forward_auth=section)
    text = str(caught.value)
    assert "forward_auth" in text and message in text


# -- property: the decision is about the configured header's value, or the check is refused ----

URI_TOKENS = ["/public/x", "/admin", "/public/../admin", "/public/%2e%2e/admin", "/a//b", "/p?q=1",
              "/public/x#/../admin", "//evil/x", "http://h/admin", "/x;y", "/%61dmin", "", "/a b",
              "/public/x?a=/../admin", "/public/x, /admin", "/[x]"]
METHODS = ["GET", "POST", "DELETE", "get", "PROPFIND", "", "GET, DELETE"]


@st.composite
def spelling(draw: st.DrawFn, name: str) -> str:
    """The same header as an app could read it: any case, '_' or '.' for '-'."""
    out = []
    for char in name:
        if char == "-":
            char = draw(st.sampled_from("-_."))
        out.append(char.upper() if draw(st.booleans()) else char.lower())
    return "".join(out)


@st.composite
def checks(draw: st.DrawFn) -> tuple[str, Headers]:
    """A check as a proxy sends it (usually the configured pair), plus what a client added:
    carriers in any spelling, some agreeing, some not, sometimes a second configured copy."""
    proxy = draw(st.sampled_from(["nginx", "traefik", "caddy"]))
    uri_name, method_name = PROXY_SOURCES[proxy]
    assert uri_name is not None and method_name is not None
    uri, method = draw(st.sampled_from(URI_TOKENS)), draw(st.sampled_from(METHODS))
    headers: Headers = []
    for name, value in ((uri_name, uri), (method_name, method)):
        if draw(st.integers(0, 9)) > 0:  # the proxy's own header, nine times in ten
            headers.append((name, value))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(URI_CARRIERS + METHOD_CARRIERS))
        own = uri if name in URI_CARRIERS else method
        pool = URI_TOKENS if name in URI_CARRIERS else METHODS
        value = draw(st.one_of(st.just(own), st.sampled_from(pool)))
        headers.append((draw(spelling(name)), value))
    return proxy, draw(st.permutations(headers))


@given(checks())
def test_the_decision_path_is_the_configured_headers_or_400(check: tuple[str, Headers]) -> None:
    proxy, headers = check
    uri_name, method_name = ForwardAuthSettings(proxy=proxy).sources()
    assert uri_name is not None and method_name is not None
    try:
        method, path, query = ask(headers, proxy)
    except BadRequest:
        return
    uris = [v for k, v in headers if k.lower() == uri_name.lower()]
    methods = [v for k, v in headers if k.lower() == method_name.lower()]
    assert len(uris) == 1 and len(methods) == 1  # exactly one source each
    raw_path, expected_query = split_uri(uris[0].encode("latin-1"))
    assert path == canonical_path(raw_path) and query == expected_query
    assert b"/." not in raw_path and b"//" not in raw_path  # the app routes it as sent
    assert method == methods[0]
    # No other carrier said anything else: never another header's value.
    for name, value in headers:
        if fold(name.encode()) in {fold(c.encode()) for c in URI_CARRIERS}:
            assert value == uris[0]
        elif fold(name.encode()) in {fold(c.encode()) for c in METHOD_CARRIERS}:
            assert value == methods[0]


def test_the_front_proxys_client_certificate_is_never_the_callers() -> None:
    """Over mTLS the connection's certificate is the ingress's: a check about another request
    must not inherit it (``tls.client_auth: principal`` would make every check the ingress)."""
    from gatekeeper.peercert import parse
    from gatekeeper.request import CLIENT_CERTIFICATE
    from tests.support.certs import TestCA

    certificate = parse(TestCA().issue("ingress-nginx").der)
    scope = scope_of([("X-Original-URI", "/admin"), ("X-Original-Method", "GET")])
    scope["extensions"] = {"tls": {CLIENT_CERTIFICATE: certificate}}
    assert Exchange(scope, "/oauth2/auth", "id", 0.0).client_certificate is certificate
    assert original(reader(), scope).client_certificate is None


@pytest.mark.parametrize(("uri", "scheme", "host"), [
    ("https://App.Example/x?y=1", "https", b"App.Example"),
    ("http://app.example:8080/x", "http", b"app.example:8080"),
    ("/x?y=1", "http", b"gatekeeper:4180"),
], ids=["absolute https: its scheme and host", "absolute with a port",
        "origin-form: the check's own (a trusted proxy's X-Forwarded-* then decide)"])
def test_an_absolute_original_uri_is_the_request_s_scheme_and_host(uri: str, scheme: str,
                                                                     host: bytes) -> None:
    """ingress-nginx writes $scheme://$http_host$request_uri: a DPoP proof's htu names that
    URL, so neither the check's own Host nor an X-Forwarded-Host that auth_request copied from
    the client may stand in for its host. X-Forwarded-Proto is kept: behind a load balancer
    that ends TLS it is the scheme the client used (htu.py reads it from trusted peers)."""
    fa = reader("custom", uri_header="X-Original-URL", method_header="X-Original-Method")
    headers = [("Host", "gatekeeper:4180"), ("X-Original-URL", uri), ("X-Original-Method", "GET"),
               ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https")]
    view = original(fa, scope_of(headers))
    assert (view.scheme, view.header_values(b"host")) == (scheme, [host])
    forwarded = view.header_values(b"x-forwarded-host")
    assert forwarded == ([] if uri.startswith("http") else [b"evil.example"])
    assert view.header_values(b"x-forwarded-proto") == [b"https"]
