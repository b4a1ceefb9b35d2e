"""A query is bytes too: whatever a client puts after the ``?`` — escapes of nothing, of NUL or of
split UTF-8, raw bytes above 0x7f, repeated or array-suffixed names, thousands of parameters — a
model that reads query parameters as object attributes (r.obj.NAME), the method-override
refusal and the rest of the pipeline answer it with a clear status, never a 500."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import InProcess, serve
from tests.support.fakes import mint
from tests.support.paths import ROOT
from tests.support.upstream import create_upstream_app
from tests.unit.app.conftest import MakeSettings

QUERIES = {
    "an escape of 0xff": b"owner=%ff",
    "a raw 0xff": b"owner=\xff",
    "an escaped NUL": b"owner=%00",
    "a raw NUL": b"owner=a\x00b",
    "split UTF-8": b"owner=%C3",
    "an unfinished escape": b"owner=%",
    "a bad escape": b"owner=%g1",
    "the name escaped to 0xff": b"%ff=alice",
    "a repeated name": b"owner=alice&owner=bob",
    "an array suffix": b"owner[]=alice",
    "a semicolon separator": b"owner=alice;owner=bob",
    "plus and an escaped space": b"owner=+%20alice",
    "no value": b"owner",
    "an empty name": b"=alice",
    "only separators": b"&&&;;",
    "a method override": b"_method=DELETE&owner=alice",
    "an override header as a parameter": b"x-http-method-override=DELETE",
    "a raw # inside": b"owner=alice#frag",
    "control characters": b"owner=\x01\x1b[31m",
    "ten thousand parameters": b"&".join(b"p%d=v" % i for i in range(10_000)),
    "one long value": b"owner=" + b"a" * 60_000,
}


@pytest.fixture(scope="module")
def settings(make_settings: MakeSettings) -> Settings:
    policies = ROOT / "policies"
    return make_settings(policy={"model": str(policies / "abac-documents.model.conf"),
                                 "policy": str(policies / "abac-documents.policy.csv"),
                                 "watch": False})


@pytest.mark.parametrize("shape", ["sidecar", "in-process"])
def test_any_query_gets_an_answer_never_a_500(settings: Settings, issuer: DevIssuer,
                                              upstream: Upstream, shape: str) -> None:
    token = mint(issuer, "alice").encode()

    async def scenario(gk: InProcess) -> list[str]:
        failures = []
        for label, query in QUERIES.items():
            for path in (b"/documents", b"/public/x", b"/oauth2/start"):
                for headers in ([(b"authorization", b"Bearer " + token)], []):
                    answer = await gk.http("GET", path + b"?" + query, headers=headers)
                    if answer.status >= 500:
                        failures.append(f"{path!r} {label}: {answer.status} {answer.body[:80]!r}")
        return failures

    inner = create_upstream_app(upstream.recorder) if shape == "in-process" else None
    assert serve(settings, scenario, inner=inner) == []


def test_the_owner_attribute_still_decides(settings: Settings, issuer: DevIssuer,
                                           upstream: Upstream) -> None:
    """The table above is not vacuous: the same app allows alice her own documents only."""
    token = mint(issuer, "alice").encode()

    async def scenario(gk: InProcess) -> list[int]:
        return [(await gk.http("GET", b"/documents?" + query,
                               headers=[(b"authorization", b"Bearer " + token)])).status
                for query in (b"owner=alice", b"owner=bob", b"owner=%ff", b"owner=alice&owner=bob")]

    assert serve(settings, scenario) == [200, 403, 403, 403]
