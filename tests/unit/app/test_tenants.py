"""Tenants from the host and ipMatch on the client address, through the whole app (issue 14 §1,
§3): gatekeeper decides on the host the app is told (X-Forwarded-Host upstream), a client that is
not a trusted proxy never chooses the tenant with X-Forwarded-Host, and a forward-auth check
decides on the front proxy's X-Forwarded-Host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support.asgi import request
from tests.support.fakes import bearer, mint
from tests.support.policy import casbin_model, write_policy
from tests.unit.app.conftest import MakeSettings

MODEL = casbin_model(
    "sub, dom, obj, act, client", "sub, dom, obj, act",
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act"
    ' && (p.obj != "/ops/*" || ipMatch(r.client, "192.0.2.0/24"))', roles="_, _, _")
POLICY = """\
p, role:editor, acme.example.com, /docs/*, GET
p, role:editor, acme.example.com, /ops/*, GET
g, alice, role:editor, acme.example.com
"""


def policy_section(tmp_path: Path) -> dict[str, Any]:
    return write_policy(tmp_path, MODEL, POLICY, watch=False, domain={"host": True})


@pytest.mark.parametrize(("peer", "headers", "status", "told"), [
    ("198.51.100.7", [(b"host", b"acme.example.com")], 200, "acme.example.com"),
    ("198.51.100.7", [(b"host", b"ACME.example.com:443")], 200, "ACME.example.com:443"),
    ("198.51.100.7", [(b"host", b"globex.example.com")], 403, None),
    ("198.51.100.7", [(b"host", b"globex.example.com"), (b"x-forwarded-host", b"acme.example.com")],
     403, None),
    ("10.0.0.2", [(b"host", b"internal"), (b"x-forwarded-host", b"acme.example.com")], 200,
     "acme.example.com"),
    ("10.0.0.2", [(b"host", b"internal"), (b"x-forwarded-host", b"acme.example.com"),
                  (b"x-forwarded-host", b"globex.example.com")], 403, None),
], ids=["the tenant's host", "its host in capitals with a port",
        "another tenant's host", "a client's X-Forwarded-Host does not choose the tenant",
        "a trusted proxy's X-Forwarded-Host does", "two X-Forwarded-Host values: refused"])
def test_the_tenant_is_the_host_the_app_is_told(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, tmp_path: Path,
    peer: str, headers: list[tuple[bytes, bytes]], status: int, told: str | None,
) -> None:
    settings = make_settings(policy=policy_section(tmp_path), trusted_proxies=["10.0.0.0/8"])
    answer = request(settings, "GET", "/docs/a", client=(peer, 4000),
                     headers=[*headers, bearer(mint(issuer, "alice"))])
    assert answer.status == status, answer.body
    if told is None:
        assert len(upstream.recorder) == 0
    else:
        assert upstream.recorder.last.header("x-forwarded-host") == told


@pytest.mark.parametrize(("forwarded_for", "status"), [
    (b"192.0.2.9", 200), (b"192.0.2.9, 203.0.113.5", 403),
], ids=["the client inside the range", "the hop the proxy appended is outside it"])
def test_ipmatch_reads_the_client_address_behind_a_trusted_proxy(
    make_settings: MakeSettings, issuer: DevIssuer, tmp_path: Path,
    forwarded_for: bytes, status: int,
) -> None:
    settings = make_settings(policy=policy_section(tmp_path), trusted_proxies=["10.0.0.0/8"])
    answer = request(settings, "GET", "/ops/restart", client=("10.0.0.2", 4000), headers=[
        (b"host", b"acme.example.com"), (b"x-forwarded-for", forwarded_for),
        bearer(mint(issuer, "alice"))])
    assert answer.status == status, answer.body


@pytest.mark.parametrize(("forwarded_host", "status"), [
    (b"acme.example.com", 202), (b"globex.example.com", 403),
], ids=["the front proxy names acme", "the front proxy names globex"])
def test_a_forward_auth_check_decides_on_the_front_proxys_forwarded_host(
    make_settings: MakeSettings, issuer: DevIssuer, tmp_path: Path,
    forwarded_host: bytes, status: int,
) -> None:
    settings = make_settings(policy=policy_section(tmp_path), trusted_proxies=["127.0.0.1/32"],
                             forward_auth={"proxy": "nginx"})
    answer = request(settings, "GET", "/oauth2/auth", headers=[
        (b"host", b"gatekeeper-upstream"), (b"x-forwarded-host", forwarded_host),
        (b"x-original-uri", b"/docs/a"), (b"x-original-method", b"GET"),
        bearer(mint(issuer, "alice"))])
    assert answer.status == status, answer.body
