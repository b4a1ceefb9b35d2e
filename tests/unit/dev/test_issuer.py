"""The dev issuer and the test-support servers, upstream and token forge, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.types import Receive, Scope, Send
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.issuer_http import create_issuer_app
from tests.support import forge
from tests.support.fakes import run
from tests.support.servers import (
    free_port,
    peak_rss_bytes,
    rss_bytes,
    run_process,
    serve_asgi,
)
from tests.support.upstream import Recorder, create_upstream_app, pattern_bytes, pattern_sha256

AUDIENCE = "my-api"


@pytest.fixture(scope="module")
def issuer() -> DevIssuer:
    # Module scope: RSA key generation is the slow part of this file.
    return DevIssuer()


@pytest.fixture(scope="module")
def issuer_server(issuer: DevIssuer) -> Iterator[httpx.Client]:
    with serve_asgi(create_issuer_app(issuer)) as url:
        issuer.issuer = url
        with httpx.Client(base_url=url, trust_env=False) as client:
            yield client


@pytest.fixture
def served(issuer: DevIssuer, issuer_server: httpx.Client) -> Iterator[tuple[DevIssuer, httpx.Client]]:
    issuer.fetch_counts.clear()
    yield issuer, issuer_server
    issuer.down = False
    issuer.jwks_delay_seconds = 0.0
    issuer.jwks_override = None
    issuer.jwks_max_age_seconds = 300


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Recorder, httpx.Client, str]]:
    recorder = Recorder()
    with (
        serve_asgi(create_upstream_app(recorder)) as url,
        httpx.Client(base_url=url, trust_env=False) as client,
    ):
        yield recorder, client, url


def claims(issuer: DevIssuer) -> dict[str, object]:
    return {"iss": issuer.issuer, "sub": "mallory", "aud": AUDIENCE, "exp": int(time.time()) + 60}


def verify(token: str, issuer: DevIssuer, alg: str) -> dict[str, object]:
    """Verify the way a strict client would: keys from the JWKS, alg bound by the JWK."""
    keys = jwt.PyJWKSet.from_dict(issuer.jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid], algorithms=[alg], audience=AUDIENCE, issuer=issuer.issuer)


# -- the issuer -------------------------------------------------------------------------------


def test_discovery_and_jwks_are_served_with_cache_headers(
    served: tuple[DevIssuer, httpx.Client],
) -> None:
    issuer, client = served
    issuer.jwks_max_age_seconds = 42
    discovery = client.get("/.well-known/openid-configuration")
    jwks = client.get("/jwks")
    assert discovery.status_code == 200
    assert discovery.json()["issuer"] == issuer.issuer
    assert discovery.json()["jwks_uri"] == f"{issuer.issuer}/jwks"
    assert {"RS256", "PS256", "ES256", "EdDSA"} <= set(
        discovery.json()["id_token_signing_alg_values_supported"]
    )
    assert jwks.headers["cache-control"] == "public, max-age=42"
    entries = jwks.json()["keys"]
    assert {e["alg"] for e in entries} == {"RS256", "PS256", "ES256", "EdDSA"}
    assert all(e["use"] == "sig" and e["kid"] for e in entries)
    assert len({e["kid"] for e in entries}) == len(entries)
    assert issuer.fetch_counts == {"/.well-known/openid-configuration": 1, "/jwks": 1}


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_a_minted_token_verifies_with_the_served_jwks(
    served: tuple[DevIssuer, httpx.Client], alg: str
) -> None:
    issuer, client = served
    token = issuer.mint("alice", audience=AUDIENCE, alg=alg, claims={"roles": ["admin"]})
    keys = jwt.PyJWKSet.from_dict(client.get("/jwks").json())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    claims = jwt.decode(token, keys[header["kid"]], algorithms=[alg], audience=AUDIENCE, issuer=issuer.issuer)
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]


def test_mint_overrides_omits_and_shapes_the_header(issuer: DevIssuer) -> None:
    token = issuer.mint(
        "bob",
        audience=["a", "b"],
        claims={"iss": "https://elsewhere"},
        omit=["exp", "jti"],
        include_kid=False,
        headers={"typ": "at+jwt"},
        now=1000,
    )
    header, payload, _ = forge.parts(token)
    assert header == {"alg": "RS256", "typ": "at+jwt"}
    assert payload == {"iss": "https://elsewhere", "sub": "bob", "aud": ["a", "b"], "iat": 1000,
                       "nbf": 1000}  # fmt: skip


def test_mint_refuses_impossible_requests(issuer: DevIssuer) -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        issuer.mint("x", audience=AUDIENCE, alg="ES256", kid=issuer.key(alg="RS256").kid)
    with pytest.raises(ValueError, match="no key for RS512"):
        issuer.mint("x", audience=AUDIENCE, alg="RS512")
    with pytest.raises(ValueError, match="alg"):
        issuer.mint("x", audience=AUDIENCE, headers={"alg": "HS256"})


def test_an_explicit_kid_signs_with_a_key_published_for_another_alg(issuer: DevIssuer) -> None:
    # The alg/key mismatch a strict verifier must refuse: PS256 with the key published for RS256.
    token = issuer.mint("x", audience=AUDIENCE, alg="PS256", kid=issuer.key(alg="RS256").kid)
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify(token, issuer, "PS256")


def test_rotation_adds_a_kid_and_drop_old_removes_the_rest() -> None:
    issuer = DevIssuer(algorithms=["ES256"])
    first = issuer.key(alg="ES256").kid
    second = issuer.rotate("ES256")
    assert second != first
    assert [k["kid"] for k in issuer.jwks()["keys"]] == [first, second]
    token = issuer.mint("alice", audience=AUDIENCE, alg="ES256")
    assert jwt.get_unverified_header(token)["kid"] == second
    third = issuer.rotate("ES256", drop_old=True)
    assert issuer.kids == [third]
    issuer.remove_key(third)
    with pytest.raises(ValueError, match="no key for ES256"):
        issuer.mint("alice", audience=AUDIENCE, alg="ES256")


def test_an_unpublished_alg_can_be_published_without_its_alg_member() -> None:
    issuer = DevIssuer(algorithms=[])
    kid = issuer.add_key("ES384", publish_alg=False)
    (entry,) = issuer.jwks()["keys"]
    assert entry["kid"] == kid and entry["crv"] == "P-384" and "alg" not in entry
    token = issuer.mint("alice", audience=AUDIENCE, alg="ES384")
    assert verify(token, issuer, "ES384")["sub"] == "alice"


def test_down_answers_503_to_everything_and_still_counts(
    served: tuple[DevIssuer, httpx.Client],
) -> None:
    issuer, client = served
    issuer.down = True
    assert client.get("/jwks").status_code == 503
    assert client.get("/nope").status_code == 503
    issuer.down = False
    assert client.get("/jwks").status_code == 200
    assert client.get("/nope").status_code == 404
    assert issuer.fetch_counts["/jwks"] == 2
    assert issuer.fetch_counts["/nope"] == 2


def test_jwks_delay_makes_concurrent_fetches_overlap(
    served: tuple[DevIssuer, httpx.Client],
) -> None:
    issuer, client = served
    issuer.jwks_delay_seconds = 0.3

    async def fetch_many() -> list[int]:
        async with httpx.AsyncClient(base_url=str(client.base_url), trust_env=False) as aclient:
            responses = await asyncio.gather(*(aclient.get("/jwks") for _ in range(5)))
        return [r.status_code for r in responses]

    assert run(fetch_many()) == [200] * 5
    # Served side by side, not one after another (counted by the issuer, not timed).
    assert issuer.jwks_most_in_flight > 1 and issuer.jwks_in_flight == 0
    assert issuer.fetch_counts["/jwks"] == 5


def test_jwks_override_serves_any_body(served: tuple[DevIssuer, httpx.Client]) -> None:
    issuer, client = served
    issuer.jwks_override = {"keys": "not a list"}
    assert client.get("/jwks").json() == {"keys": "not a list"}


# -- servers ----------------------------------------------------------------------------------


def test_serve_asgi_starts_and_stops_repeatedly_on_a_fixed_port() -> None:
    port = free_port()
    for _ in range(3):
        with (
            serve_asgi(create_upstream_app(), port=port) as url,
            httpx.Client(trust_env=False) as client,
        ):
            assert url == f"http://127.0.0.1:{port}"
            assert client.get(url + "/echo").status_code == 200
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/echo")


def test_serve_asgi_reports_a_failed_lifespan_startup() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("no lifespan here")

    with pytest.raises(RuntimeError, match="did not start"), serve_asgi(broken):
        pass


def test_run_process_waits_for_readiness_and_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with run_process(argv, ready_url=f"http://127.0.0.1:{port}/", cwd=str(tmp_path)) as proc:
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://127.0.0.1:{port}/").status_code == 200
        proc.wait_for_output('"GET / HTTP/1.1" 200')
        assert rss_bytes(proc.pid) > 1_000_000
        assert peak_rss_bytes(proc.pid) >= rss_bytes(proc.pid)
    assert proc.returncode is not None  # stopped and reaped


def test_run_process_raises_with_output_when_the_process_dies_early() -> None:
    argv = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    with (
        pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*boom"),
        run_process(argv, ready_port=free_port(), timeout=5),
    ):
        pass


def test_run_process_passes_env_and_waits_for_a_port() -> None:
    port = free_port()
    script = (
        "import os, socket, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen()\n"
        "print('listening', os.environ.get('HOME', 'no-home'), flush=True); time.sleep(60)\n"
    )
    argv = [sys.executable, "-c", script]
    with run_process(argv, env={"PORT": str(port), "HOME": None}, ready_port=port) as proc:
        assert "listening no-home" in proc.wait_for_output("listening")
    assert proc.returncode == -15  # SIGTERM ended it


# -- upstream ---------------------------------------------------------------------------------


def test_recorder_keeps_raw_headers_duplicates_and_raw_path(
    upstream: tuple[Recorder, httpx.Client, str],
) -> None:
    recorder, client, _ = upstream
    response = client.get("/some/%2Fpath", params={"q": "1"}, headers=[("X-Dup", "one"), ("x-dup", "two")])
    record = recorder.last
    assert record.raw_path == b"/some/%2Fpath"
    assert record.path == "/some//path"
    assert record.query_string == b"q=1"
    assert record.header_values("X-DUP") == ["one", "two"]
    # uvicorn lowercases names on arrival, so case is not observable upstream.
    assert (b"x-dup", b"one") in record.headers
    echoed = response.json()
    assert echoed["raw_path"] == "/some/%2Fpath"
    assert ["x-dup", "two"] in echoed["headers"]
    with pytest.raises(AssertionError, match="2 times"):
        record.header("x-dup")


def test_upload_and_download_stream_and_hash(
    upstream: tuple[Recorder, httpx.Client, str],
) -> None:
    recorder, client, _ = upstream
    size = 3 * 65536 + 7

    def body() -> Iterator[bytes]:
        for offset in range(0, size, 50_000):
            yield pattern_bytes(offset, min(50_000, size - offset))

    uploaded = client.post("/upload", content=body())
    assert uploaded.json() == {"bytes": size, "sha256": pattern_sha256(size)}
    assert recorder.last.body_bytes == size
    with client.stream("GET", "/stream/download", params={"bytes": size}) as download:
        assert download.headers["content-length"] == str(size)
        digest = hashlib.sha256()
        for chunk in download.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == pattern_sha256(size)
    chunked = client.get("/stream/download", params={"bytes": 1000, "chunked": "1"})
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert chunked.content == pattern_bytes(0, 1000)


def test_download_stops_generating_when_the_client_goes_away(
    upstream: tuple[Recorder, httpx.Client, str],
) -> None:
    recorder, client, _ = upstream
    total = 1 << 30
    with client.stream("GET", "/stream/download", params={"bytes": total}) as download:
        next(download.iter_raw())
    record = recorder.last
    deadline = time.monotonic() + 5
    sent = -1
    while sent != record.response_bytes_sent and time.monotonic() < deadline:
        sent = record.response_bytes_sent
        time.sleep(0.1)
    assert sent < total // 100


def test_the_special_routes(upstream: tuple[Recorder, httpx.Client, str]) -> None:
    _, client, _ = upstream
    cookies = client.get("/cookies")
    assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert cookies.headers.get_list("x-multi") == ["a", "b"]
    client.cookies.clear()
    chunked = client.get("/chunked", params={"parts": 3})
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert chunked.text == "part-0\npart-1\npart-2\n"
    assert client.get("/status/418").status_code == 418
    redirect = client.get("/status/302", params={"location": "/there"})
    assert (redirect.status_code, redirect.headers["location"]) == (302, "/there")
    assert client.get("/status/204").content == b""
    head = client.head("/head")
    assert (head.headers["content-length"], head.content) == ("1234", b"")
    assert len(client.get("/head").content) == 1234
    hop = client.get("/hop")
    assert hop.headers["x-secret-hop"] == "1"
    assert hop.headers["keep-alive"] == "timeout=5"
    slow = client.get("/slow", params={"seconds": "0.05", "phase": "body"})
    assert slow.json() == {"slept": 0.05}


def test_websocket_echo_and_whoami(upstream: tuple[Recorder, httpx.Client, str]) -> None:
    recorder, _, url = upstream
    ws_url = url.replace("http://", "ws://") + "/ws?x=1"
    with ws_connect(
        ws_url, subprotocols=[Subprotocol("chat")], additional_headers={"X-Who": "alice"}, proxy=None
    ) as ws:
        assert ws.subprotocol == "chat"
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\x01")
        assert ws.recv() == b"\x00\x01"
        ws.send("whoami")
        handshake = json.loads(ws.recv())
        assert ["x-who", "alice"] in handshake["headers"]
        assert handshake["query"] == "x=1"
        assert handshake["subprotocols"] == ["chat"]
        ws.send("close:4001")
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert ws.close_code == 4001
    assert recorder.by_path("/ws")[-1].type == "websocket"


# -- forge ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", forge.NONE_VARIANTS)
def test_unsigned_tokens_carry_the_none_variant(issuer: DevIssuer, alg: str) -> None:
    token = forge.unsigned({"typ": "JWT"}, claims(issuer), alg=alg)
    assert token.endswith(".") and token.count(".") == 2
    assert forge.decode_header(token) == {"typ": "JWT", "alg": alg}


def test_strip_signature_keeps_the_real_alg(issuer: DevIssuer) -> None:
    token = forge.strip_signature(issuer.mint("x", audience=AUDIENCE))
    assert forge.decode_header(token)["alg"] == "RS256"
    assert forge.parts(token)[2] == b""


def test_hs256_with_public_key_is_an_hmac_over_the_pem(issuer: DevIssuer) -> None:
    key = issuer.key(alg="RS256")
    pem = key.public_pem()
    token = forge.hs256_with_public_key(pem, {"kid": key.kid}, claims(issuer))
    head, body, signature = token.split(".")
    expected = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert forge.b64url_decode(signature) == expected
    assert forge.decode_header(token) == {"kid": key.kid, "alg": "HS256"}
    with pytest.raises(jwt.InvalidKeyError):  # why forge does the HMAC itself
        jwt.decode(token, pem, algorithms=["HS256"], audience=AUDIENCE)
    encodings = forge.public_key_encodings(key.public_key)
    assert {"spki_pem", "spki_der", "pkcs1_pem", "jwk_json"} <= set(encodings)
    assert encodings["spki_pem"] == pem


def test_tampered_tokens_keep_the_old_signature(issuer: DevIssuer) -> None:
    token = issuer.mint("alice", audience=AUDIENCE)
    tampered = forge.tamper_payload(token, sub="admin", exp=forge.DELETE)
    assert forge.decode_payload(tampered)["sub"] == "admin"
    assert "exp" not in forge.decode_payload(tampered)
    assert tampered.rsplit(".", 1)[1] == token.rsplit(".", 1)[1]
    with pytest.raises(jwt.InvalidSignatureError):
        verify(tampered, issuer, "RS256")
    swapped = forge.tamper_header(token, alg="RS512")
    assert forge.decode_header(swapped)["alg"] == "RS512"
    assert swapped.split(".")[1:] == token.split(".")[1:]


def test_resign_with_an_attacker_key_verifies_only_with_that_key(issuer: DevIssuer) -> None:
    attacker = forge.attacker_key("RS256")
    token = forge.resign(issuer.mint("alice", audience=AUDIENCE), attacker, "RS256")
    assert jwt.decode(token, attacker.public_key(), algorithms=["RS256"], audience=AUDIENCE)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(token, issuer, "RS256")


def test_es256_zero_signature_is_64_zero_bytes(issuer: DevIssuer) -> None:
    token = forge.es256_zero_signature({"kid": issuer.key(alg="ES256").kid}, claims(issuer))
    header, _, signature = forge.parts(token)
    assert header["alg"] == "ES256"
    assert signature == b"\x00" * 64
    with pytest.raises(jwt.InvalidSignatureError):
        verify(token, issuer, "ES256")


def test_with_header_adds_members_and_resigns_with_the_given_key(issuer: DevIssuer) -> None:
    key = issuer.key(alg="RS256")
    token = issuer.mint("alice", audience=AUDIENCE)
    hostile = forge.with_header(
        token, key=key.private_key, jku="https://evil.example/jwks", x5u="https://evil.example/c"
    )
    header = forge.decode_header(hostile)
    assert header["jku"] == "https://evil.example/jwks"
    assert header["x5u"] == "https://evil.example/c"
    # Signed by the real key: only the header may make a verifier refuse it.
    assert jwt.decode(hostile, key.public_key, algorithms=["RS256"], audience=AUDIENCE)
    critical = forge.with_header(token, {"crit": ["x-evil"], "x-evil": 1}, key=key.private_key)
    assert forge.decode_header(critical)["crit"] == ["x-evil"]
    with pytest.raises(jwt.InvalidTokenError, match="Unsupported critical extension"):
        jwt.decode(critical, key.public_key, algorithms=["RS256"], audience=AUDIENCE)
    unsigned_change = forge.with_header(token, {"kid": "../../etc/passwd"})
    assert forge.decode_header(unsigned_change)["kid"] == "../../etc/passwd"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_embedded_jwk_is_signed_by_the_key_it_embeds(issuer: DevIssuer, alg: str) -> None:
    token = forge.embedded_jwk(claims(issuer), header={"kid": "x"}, alg=alg)
    header = forge.decode_header(token)
    embedded = jwt.PyJWK(header["jwk"], algorithm=alg)
    assert jwt.decode(token, embedded, algorithms=[alg], audience=AUDIENCE)["sub"] == "mallory"


def test_truncate_garble_and_oversize(issuer: DevIssuer) -> None:
    token = issuer.mint("alice", audience=AUDIENCE)
    assert forge.truncate(token, 4) == token[:-4]
    garbled = forge.garble(token)
    assert garbled != token and len(garbled) == len(token)
    forge.b64url_decode(garbled.split(".")[2])  # still valid base64url
    with pytest.raises(jwt.InvalidSignatureError):
        verify(garbled, issuer, "RS256")
    big = issuer.mint("alice", audience=AUDIENCE, claims=forge.oversized_claims(20_000))
    assert len(big) > 20_000
