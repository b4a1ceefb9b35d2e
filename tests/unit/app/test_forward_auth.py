"""Forward-auth, in process: the same decisions answered about the request a front proxy asks
about (202 with the identity headers, 401, 403), only to a trusted proxy, never proxied."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support.asgi import Answer, request
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings

TRUSTED = ["127.0.0.1/32"]  # the harness's peer is 127.0.0.1


def check(make_settings: MakeSettings, uri: str, method: str, *extra: tuple[bytes, bytes],
          trusted: list[str] = TRUSTED) -> Answer:
    settings = make_settings(policy=EXAMPLE_POLICY, trusted_proxies=trusted,
                             forward_auth={"proxy": "nginx"})
    headers = [(b"x-original-uri", uri.encode()), (b"x-original-method", method.encode()), *extra]
    return request(settings, "GET", "/oauth2/auth", headers=headers)


def test_an_allowed_request_is_202_with_the_identity_for_the_proxy_to_pass_on(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    token = mint(issuer, claims={"roles": ["viewer"], "email": "alice@example.com"})
    answer = check(make_settings, "/api/p1/items?page=2", "GET", bearer(token),
                   (b"x-auth-request-user", b"mallory"))
    assert answer.status == 202, answer.body
    assert answer.header_values("x-auth-request-user") == ["alice"]
    assert answer.header_values("x-auth-request-email") == ["alice@example.com"]
    assert answer.header("x-request-id") is not None
    assert len(upstream.recorder) == 0  # a check is answered, never proxied


@pytest.mark.parametrize(("roles", "uri", "method", "status"), [
    (None, "/api/p1/items", "GET", 401),
    (["viewer"], "/api/p1/items", "POST", 403),
    (["viewer"], "/admin/users", "GET", 403),
    (["editor"], "/api/p1/items/audit", "DELETE", 403),
    (None, "/public/x", "GET", 202),
], ids=["no token: 401", "a viewer's POST: 403", "a viewer at /admin: 403",
        "the audit log's DELETE: 403", "a public page: 202"])
def test_the_check_is_decided_on_the_original_request(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    roles: list[str] | None, uri: str, method: str, status: int,
) -> None:
    extra = [bearer(mint(issuer, claims={"roles": roles}))] if roles is not None else []
    answer = check(make_settings, uri, method, *extra)
    assert answer.status == status, answer.body
    if status == 401:
        assert answer.header("www-authenticate") == 'Bearer realm="gatekeeper"'
    assert len(upstream.recorder) == 0


def test_a_peer_that_is_not_a_trusted_proxy_gets_no_answer_about_another_request(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    token = mint(issuer, claims={"roles": ["admin"]})
    answer = check(make_settings, "/admin/users", "GET", bearer(token), trusted=[])
    assert answer.status == 400
    assert answer.json()["error"] == "untrusted_forward_auth"
    assert answer.header_values("x-auth-request-user") == []


@pytest.mark.parametrize(("who", "uri", "status"), [
    ("a caller with a token", "/api/p1/items", 202),
    ("anonymous on a public page", "/public/x", 202),
    ("anonymous elsewhere", "/api/p1/items", 401),
    ("a caller refused", "/admin/users", 403),
])
def test_every_check_answer_is_no_store(
    make_settings: MakeSettings, issuer: DevIssuer, who: str, uri: str, status: int,
) -> None:
    """A 202 carries one caller's identity headers (with pass_access_token, the token; with an
    assertion, one bound to this request): a cache in front of the check (nginx ``proxy_cache``
    on the auth location, keyed on a cookie) would hand them to another caller (RFC 9111
    §5.2.2.5). Every other answer gatekeeper writes is no-store already."""
    extra = [bearer(mint(issuer, claims={"roles": ["viewer"]}))] if who.startswith("a caller") else []
    answer = check(make_settings, uri, "GET", *extra)
    assert answer.status == status, answer.body
    assert answer.header("cache-control") == "no-store"
