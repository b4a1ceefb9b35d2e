"""The whole app, in process, with a policy that reads the request: conditions per rule over the
token's claims and the query (policies/abac-documents.*). The query the policy read is the query
the app receives, byte for byte; forward-auth decides on the original URI's query."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support.asgi import request
from tests.support.fakes import bearer, mint
from tests.support.paths import ROOT
from tests.unit.app.conftest import MakeSettings

ABAC_POLICY = {"model": str(ROOT / "policies" / "abac-documents.model.conf"),
               "policy": str(ROOT / "policies" / "abac-documents.policy.csv"), "watch": False}


@pytest.mark.parametrize(("target", "status"), [
    ("/documents?owner=alice", 200),
    ("/documents?owner=bob", 403),
    ("/documents", 403),
    ("/documents?owner=alice&owner=bob", 403),
    ("/documents?owner=bob&owner=alice", 403),
    ("/documents?owner=alice;owner=bob", 403),
    ("/documents?Owner=bob&owner=alice", 403),
    ("/documents?own%65r=alic%65&page=2", 200),
], ids=["her own", "another's", "no owner", "repeated, hers first", "repeated, hers last",
        "a ';' pair", "another spelling beside hers", "encoded, with another parameter"])
def test_the_query_the_policy_read_is_the_query_the_app_receives(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, target: str,
    status: int,
) -> None:
    token = mint(issuer, "alice", claims={"roles": []})
    answer = request(make_settings(policy=ABAC_POLICY), "GET", target, headers=[bearer(token)])
    assert answer.status == status, answer.body
    if status == 200:
        seen = upstream.recorder.last
        assert (len(upstream.recorder), seen.path) == (1, "/documents")
        assert seen.query_string == target.partition("?")[2].encode()
    else:
        assert len(upstream.recorder) == 0


@pytest.mark.parametrize(("claims", "status"), [
    ({"teams": ["red"]}, 200), ({"teams": ["blue"]}, 403), ({}, 403), ({"teams": "red-x"}, 403),
], ids=["a member", "another team's member", "no teams claim", "a teams claim that is a string"])
def test_a_claim_condition_decides_at_the_proxy(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    claims: dict[str, object], status: int,
) -> None:
    token = mint(issuer, "alice", claims={"roles": [], **claims})
    answer = request(make_settings(policy=ABAC_POLICY), "GET", "/teams/red/pages/1",
                     headers=[bearer(token)])
    assert answer.status == status, answer.body
    assert len(upstream.recorder) == (1 if status == 200 else 0)


@pytest.mark.parametrize(("uri", "status"), [
    ("/documents?owner=alice", 202), ("/documents?owner=bob", 403),
    ("/documents?owner=alice&owner=bob", 403),
], ids=["her own", "another's", "repeated"])
def test_forward_auth_decides_on_the_original_query(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, uri: str, status: int,
) -> None:
    settings = make_settings(policy=ABAC_POLICY, trusted_proxies=["127.0.0.1/32"],
                             forward_auth={"proxy": "nginx"})
    token = mint(issuer, "alice", claims={"roles": []})
    headers = [(b"x-original-uri", uri.encode()), (b"x-original-method", b"GET"), bearer(token)]
    answer = request(settings, "GET", "/oauth2/auth", headers=headers)
    assert answer.status == status, answer.body
    assert len(upstream.recorder) == 0
