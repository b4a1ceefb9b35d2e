"""TLS on the pod port (docs/tls.md), through a real gatekeeper process on 127.0.0.1, under both
HTTP/1.1 protocols (``server.http``), with certificates made in the test and clients that trust
only the test CA:

- TLS 1.2+ only, Mozilla's intermediate suites, ALPN http/1.1; the app hears ``https``;
- the certificate rotates (files rewritten, or a Secret volume's ``..data`` symlink swapped)
  while a keep-alive connection stays open and keeps working; new connections get the new one;
  files that would not serve leave the old certificate serving, and the log says why;
- mTLS: no certificate, or one of another CA, gets no exchange; a good one's SANs are
  ``r.claims.x509.*`` to the policy; with ``client_auth: principal`` it is a caller of its own.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.tls.context import MOZILLA_INTERMEDIATE_TLS12
from tests.conftest import Gatekeeper, Upstream
from tests.support.certs import Issued, SecretVolume, TestCA, write_pair
from tests.support.fakes import mint
from tests.support.poll import eventually

PROTOCOLS = ["gatekeeper", "uvicorn"]
ROTATION_SECONDS = 20.0

SAN_MODEL = """\
[request_definition]
r = sub, obj, act, claims

[policy_definition]
p = sub, obj, act, san

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) && \
"x509" in r.claims && p.san in r.claims.x509.san_dns
"""
SAN_POLICY = "p, role:authenticated, /payments/*, GET, payments.internal\n"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    return mint(issuer, "alice")


def host_port(gk: Gatekeeper) -> tuple[str, int]:
    host, _, port = gk.config["listen"].rpartition(":")
    return host, int(port)


def https(gk: Gatekeeper) -> str:
    return "https://" + str(gk.config["listen"])


def tls_config(directory: Path, ca: TestCA, server: Issued | None = None,
               **extra: Any) -> dict[str, Any]:
    cert, key = write_pair(directory, server or ca.server())
    section: dict[str, Any] = {"cert_file": str(cert), "key_file": str(key),
                               "reload_check_seconds": 0.2, **extra}
    if "client_certificate" in extra or "client_auth" in extra:
        (directory / "ca.crt").write_bytes(ca.pem)
        section["client_ca_file"] = str(directory / "ca.crt")
    return section


def served_certificate(gk: Gatekeeper, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(host_port(gk), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def refused(gk: Gatekeeper, context: ssl.SSLContext) -> bool:
    """No answer on this TLS connection: the handshake fails, or (TLS 1.3, where the server
    judges the client's certificate after the client's side finished) the first read does."""
    try:
        with socket.create_connection(host_port(gk), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return tls.recv(100) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def client(gk: Gatekeeper, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(base_url=https(gk), verify=context, trust_env=False, timeout=10)


# -- TLS itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_pass_over_tls_and_the_app_hears_https(
        gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, ca: TestCA,
        token: str, tmp_path: Path, protocol: str) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca), server={"http": protocol})
    with client(gk, ca.client_context()) as c:
        assert c.get("/echo").status_code == 401
        answer = c.get("/echo", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert upstream.recorder.last.header("x-forwarded-proto") == "https"
    # A client that does not trust the test CA refuses gatekeeper's certificate.
    with pytest.raises(httpx.ConnectError), client(gk, ssl.create_default_context()) as c:
        c.get("/public/x")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tls_1_1_is_refused_and_1_2_speaks_the_intermediate_suites(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, tmp_path: Path,
        protocol: str) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca), server={"http": protocol})
    old = ca.client_context()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
    with warnings.catch_warnings():  # the client's own TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as refused:
        served_certificate(gk, old)
    assert "VERSION" in str(refused.value).upper() or "PROTOCOL" in str(refused.value).upper()

    tls12 = ca.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    tls12.set_ciphers("ALL:@SECLEVEL=0")  # offer everything: the server chooses
    with socket.create_connection(host_port(gk), timeout=10) as raw, \
            tls12.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None and cipher[0] in MOZILLA_INTERMEDIATE_TLS12.split(":")


@pytest.mark.parametrize(("offered", "selected"), [
    (["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"), (["h2"], None),
], ids=["h2 and http/1.1 offered: http/1.1", "http/1.1 offered: http/1.1",
        "only h2 offered: no protocol is claimed"])
def test_alpn_selects_http_1_1_only(gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA,
                                    tmp_path: Path, offered: list[str], selected: str | None) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca))
    context = ca.client_context()
    context.set_alpn_protocols(offered)
    with socket.create_connection(host_port(gk), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == selected


# -- rotation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("how", ["rewritten files", "a ..data symlink swap"])
def test_a_rotated_certificate_serves_new_connections_while_an_open_one_keeps_working(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, token: str, tmp_path: Path,
        how: str, protocol: str) -> None:
    first, second = ca.server("first"), ca.server("second")
    volume = SecretVolume(tmp_path / "secret")
    if how == "rewritten files":
        section = tls_config(tmp_path, ca, first)
    else:
        volume.publish({"tls.crt": first.cert_pem, "tls.key": first.key_pem})
        section = {"cert_file": str(volume.path("tls.crt")), "key_file": str(volume.path("tls.key")),
                   "reload_check_seconds": 0.2}

    def rotate() -> None:
        if how == "rewritten files":
            write_pair(tmp_path, second)
        else:
            volume.publish({"tls.crt": second.cert_pem, "tls.key": second.key_pem})

    gk = gatekeeper_factory(tls=section, server={"http": protocol})
    context = ca.client_context()
    host, port = host_port(gk)
    kept = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        kept.request("GET", "/echo", headers={"Authorization": f"Bearer {token}"})
        assert kept.getresponse().read() and kept.sock is not None
        sock = kept.sock
        assert sock.getpeercert(binary_form=True) == first.der

        rotate()
        assert eventually(lambda: served_certificate(gk, context) == second.der,
                          ROTATION_SECONDS), "new connections never got the new certificate"
        kept.request("GET", "/echo", headers={"Authorization": f"Bearer {token}"})
        answer = kept.getresponse()
        assert answer.status == 200 and answer.read()
        assert kept.sock is sock, "the open connection was replaced"
        assert sock.getpeercert(binary_form=True) == first.der
    finally:
        kept.close()
    assert "TLS certificate loaded" in gk.process.output()


def test_files_that_would_not_serve_leave_the_old_certificate_serving(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, tmp_path: Path) -> None:
    first, other = ca.server("first"), ca.server("other")
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca, first))
    context = ca.client_context()
    # The key of another certificate, beside the serving certificate.
    (tmp_path / "tls.key").write_bytes(other.key_pem)

    def said_why() -> bool:
        served_certificate(gk, context)  # a handshake: the check runs on one
        return "TLS certificate files refused" in gk.process.output()

    assert eventually(said_why, ROTATION_SECONDS)
    assert served_certificate(gk, context) == first.der
    lines = [json.loads(line) for line in gk.process.output().splitlines()
             if "TLS certificate files refused" in line]
    assert lines[0]["key"] == "tls.key_file" and "is not the key" in lines[0]["reason"]
    output = gk.process.output()
    for key_pem in (first.key_pem, other.key_pem):
        assert key_pem.decode().splitlines()[1] not in output
    assert "PRIVATE KEY" not in output


# -- client certificates ----------------------------------------------------------------------

def _san_policy(directory: Path) -> dict[str, Any]:
    (directory / "model.conf").write_text(SAN_MODEL)
    (directory / "policy.csv").write_text(SAN_POLICY)
    return {"model": str(directory / "model.conf"), "policy": str(directory / "policy.csv")}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_required_client_certificates_gate_the_handshake_and_their_sans_reach_the_policy(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, token: str, tmp_path: Path,
        protocol: str) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca, client_certificate="required"),
                            policy=_san_policy(tmp_path), server={"http": protocol})
    stranger = TestCA("Another CA").issue("mallory", dns=("payments.internal",))
    assert refused(gk, ca.client_context()), "no client certificate, yet an answer"
    assert refused(gk, ca.client_context(stranger, tmp_path / "stranger")), \
        "a certificate of another CA, yet an answer"

    payments = ca.client_context(ca.issue("svc-payments", dns=("payments.internal",)),
                                 tmp_path / "payments")
    billing = ca.client_context(ca.issue("svc-billing", dns=("billing.internal",)),
                                tmp_path / "billing")
    bearer = {"Authorization": f"Bearer {token}"}
    with client(gk, payments) as c:
        assert c.get("/payments/1", headers=bearer).status_code == 200
        assert c.get("/payments/1").status_code == 401  # claims mode: a token is still needed
    with client(gk, billing) as c:
        assert c.get("/payments/1", headers=bearer).status_code == 403


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_token_claiming_x509_does_not_pass_for_a_certificate(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, issuer: DevIssuer,
        tmp_path: Path, protocol: str) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca, client_certificate="optional"),
                            policy=_san_policy(tmp_path), server={"http": protocol})
    forged = mint(issuer, "alice", claims={"x509": {"san_dns": ["payments.internal"]}})
    with client(gk, ca.client_context()) as c:
        assert c.get("/payments/1", headers={"Authorization": f"Bearer {forged}"}).status_code == 403


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_certificate_alone_is_a_caller_with_client_auth_principal(
        gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, ca: TestCA,
        token: str, tmp_path: Path, protocol: str) -> None:
    gk = gatekeeper_factory(
        tls=tls_config(tmp_path, ca, client_certificate="optional", client_auth="principal",
                       client_principal="san_uri"),
        server={"http": protocol})
    spiffe = "spiffe://cluster.local/ns/shop/sa/orders"
    workload = ca.client_context(ca.issue("orders", uris=(spiffe,)), tmp_path / "orders")
    with client(gk, workload) as c:
        assert c.get("/echo").status_code == 200
        assert upstream.recorder.last.header("x-auth-request-user") == "x509#" + spiffe
        # A certificate is ambient, as a cookie is: a cross-site unsafe request is refused.
        assert c.post("/echo", headers={"Origin": "https://evil.example"}).status_code == 403
        # A token wins over the certificate: its caller is the token's.
        assert c.get("/echo", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert upstream.recorder.last.header("x-auth-request-user").endswith("#alice")  # type: ignore[union-attr]
    two_uris = ca.client_context(ca.issue("two", uris=(spiffe, spiffe + "-b")), tmp_path / "two")
    with client(gk, two_uris) as c:
        assert c.get("/echo").status_code == 401  # which of the two is the caller? not ours to guess
    with client(gk, ca.client_context()) as c:
        assert c.get("/echo").status_code == 401  # optional: no certificate, no token


def test_the_admin_listener_stays_plain_unless_asked(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, tmp_path: Path) -> None:
    gk = gatekeeper_factory(tls=tls_config(tmp_path / "plain", ca))
    assert httpx.get(gk.admin_url + "/healthz", trust_env=False).status_code == 200
    section = tls_config(tmp_path / "admin", ca, admin=True, client_certificate="required")
    tls_admin = gatekeeper_factory(tls=section, wait_ready=False)
    admin = tls_admin.admin_url.replace("http://", "https://")
    context = ca.client_context()  # no client certificate: the kubelet's probes have none

    def healthy() -> bool:
        try:
            return httpx.get(admin + "/healthz", verify=context, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    assert eventually(healthy, 15)


def test_every_worker_serves_tls_with_its_own_context(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, token: str,
        tmp_path: Path) -> None:
    """workers > 1: the context factory is pickled into each worker, which builds its own."""
    gk = gatekeeper_factory(tls=tls_config(tmp_path, ca), workers=2)
    with client(gk, ca.client_context()) as c:
        statuses = {c.get("/echo", headers={"Authorization": f"Bearer {token}",
                                            "Connection": "close"}).status_code
                    for _ in range(20)}
    assert statuses == {200}
    # Each worker builds its context as it starts; the second may start after the first answered.
    assert eventually(lambda: gk.process.output().count("TLS certificate loaded") >= 2, 15)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_websocket_over_tls_is_authenticated_by_its_certificate(
        gatekeeper_factory: Callable[..., Gatekeeper], ca: TestCA, tmp_path: Path,
        protocol: str) -> None:
    gk = gatekeeper_factory(
        tls=tls_config(tmp_path, ca, client_certificate="optional", client_auth="principal",
                       client_principal="san_uri"),
        server={"http": protocol})
    spiffe = "spiffe://cluster.local/ns/shop/sa/feed"
    context = ca.client_context(ca.issue("feed", uris=(spiffe,)), tmp_path / "feed")

    async def whoami(ssl_context: ssl.SSLContext) -> dict[str, Any]:
        async with ws_connect(f"wss://{gk.config['listen']}/ws", proxy=None, open_timeout=10,
                              ssl=ssl_context, server_hostname="localhost") as ws:
            await ws.send("whoami")
            answer: dict[str, Any] = json.loads(await ws.recv())
            return answer

    handshake = asyncio.run(whoami(context))
    assert ["x-auth-request-user", "x509#" + spiffe] in handshake["headers"]
    with pytest.raises(InvalidStatus) as refused:  # no certificate, no token: 401
        asyncio.run(whoami(ca.client_context()))
    assert refused.value.response.status_code == 401
