"""docs/cors.md is a working example: its config is one gatekeeper accepts (the real loader),
and each HTTP exchange it shows is what gatekeeper answers with the page's own ``cors`` rules —
the status and every header shown, and no other ``Access-Control-*`` header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream, gatekeeper_config
from tests.support.asgi import Answer, InProcess, serve
from tests.support.docs import load_block, yaml_blocks
from tests.support.fakes import mint
from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "cors.md").read_text(encoding="utf-8")
CONFIG = yaml_blocks(DOC)[0]


@dataclass(frozen=True)
class Exchange:
    method: str
    target: str
    request_headers: list[tuple[str, str]]
    status: int
    response_headers: list[tuple[str, str]]


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    return [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]


def exchanges(markdown: str) -> list[Exchange]:
    found = []
    for block in re.findall(r"```http\n(.*?)```", markdown, flags=re.S):
        request, response = block.strip().split("\n\n")
        request_line, *request_headers = request.splitlines()
        status_line, *response_headers = response.splitlines()
        method, target, _ = request_line.split(" ")
        found.append(Exchange(method, target, _headers(request_headers), int(status_line.split(" ")[1]),
                              _headers(response_headers)))
    return found


EXCHANGES = exchanges(DOC)


def test_the_pages_config_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_block(CONFIG, tmp_path, monkeypatch)
    assert [rule.paths for rule in settings.cors] == [["/api/*"], ["/*"]]


def test_the_page_shows_a_grant_a_refusal_and_a_real_request() -> None:
    assert [(e.method, e.status) for e in EXCHANGES] == [("OPTIONS", 204), ("OPTIONS", 403), ("GET", 200)]


@pytest.mark.parametrize("shown", EXCHANGES, ids=[f"{e.method} {e.target} is {e.status}" for e in EXCHANGES])
def test_each_exchange_on_the_page_is_what_gatekeeper_answers(
    shown: Exchange, issuer: DevIssuer, upstream: Upstream,
) -> None:
    # The page's cors rules, verbatim, on the suite's issuer and recording app.
    rules = yaml.safe_load(CONFIG.text)["cors"]
    settings = Settings.model_validate(gatekeeper_config(issuer, upstream.url, cors=rules))
    token = mint(issuer, "alice")
    headers = [(name, value.replace("<token>", token)) for name, value in shown.request_headers]

    async def one(gk: InProcess) -> Answer:
        return await gk.http(shown.method, shown.target, headers=headers)

    answer = serve(settings, one)
    assert answer.status == shown.status, answer.body
    for name, value in shown.response_headers:
        assert answer.header_values(name) == [value], name
    documented = {name.lower() for name, _ in shown.response_headers}
    extra = {n.decode().lower() for n, _ in answer.headers if n.lower().startswith(b"access-control-")}
    assert extra <= documented
