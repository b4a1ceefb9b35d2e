"""docs/in-process.md stays true: its example app, run as written with a config file beside it,
is gated by gatekeeper (401 without a token) and its @requires sees the token's roles."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream, gatekeeper_config
from tests.support.fakes import mint
from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "in-process.md").read_text(encoding="utf-8")


def test_the_example_app_is_gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  issuer: DevIssuer, upstream: Upstream) -> None:
    [code] = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    (tmp_path / "gatekeeper.yaml").write_text(yaml.safe_dump(gatekeeper_config(issuer, upstream.url)))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/in-process.md", "exec"), namespace)
    app = namespace["app"]
    editor = mint(issuer, "alice", claims={"roles": ["editor"]})
    viewer = mint(issuer, "bob", claims={"roles": ["viewer"]})

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            answers = [await client.post("/articles/publish"),
                       await client.post("/articles/publish",
                                         headers={"authorization": f"Bearer {viewer}"}),
                       await client.post("/articles/publish",
                                         headers={"authorization": f"Bearer {editor}"})]
        await app.shutdown()
        return answers

    anonymous, viewer_answer, editor_answer = asyncio.run(scenario())
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
    assert viewer_answer.status_code == 403  # Starlette's @requires("editor")
    assert editor_answer.status_code == 200
    assert editor_answer.json() == {"published_by": "alice", "scopes": ["authenticated", "editor"]}
