"""auth.issuers[].introspection.token_prefixes: an opaque token names no issuer, so with several
introspecting issuers each says which tokens are its own — refused at start otherwise, naming
the key — and no issuer is ever shown a token another one handed out."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings.file import load_settings


def issuers(*prefixes: list[str] | None) -> str:
    lines = ["auth:", "  issuers:"]
    for index, prefix in enumerate(prefixes):
        lines += [f"    - issuer: https://idp{index}.example", "      audience: [api]",
                  "      jwks_uri: https://idp{index}.example/jwks".replace("{index}", str(index)),
                  "      introspection:", "        endpoint: https://idp.example/introspect",
                  "        client_id: gk", "        client_secret: s3cr3t-value"]
        if prefix is not None:
            lines.append(f"        token_prefixes: {prefix}")
    return "\n".join(lines) + "\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("upstream: http://127.0.0.1:8080\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


def loads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("upstream: http://127.0.0.1:8080\n" + text)
    load_settings(path, environ={})


@pytest.mark.parametrize(("prefixes", "key"), [
    ([None, None], "auth.issuers[0].introspection.token_prefixes"),
    ([["gho_"], None], "auth.issuers[1].introspection.token_prefixes"),
    ([["gho_"], []], "auth.issuers[1].introspection.token_prefixes"),
    ([["gh"], ["gho_"]], "auth.issuers[1].introspection.token_prefixes"),
    ([["okta_", "gho_"], ["x_", "gho_"]], "auth.issuers[1].introspection.token_prefixes"),
    ([["a.b"]], "token_prefixes"),
    ([["a b"]], "token_prefixes"),
], ids=["two issuers, no prefixes", "the second without", "the second empty",
        "one prefix inside another", "the same prefix twice", "a dot", "a space"])
def test_ambiguous_routing_is_refused_naming_the_key(
        tmp_path: Path, prefixes: list[list[str] | None], key: str) -> None:
    found = problems(tmp_path, issuers(*prefixes))
    assert any(key in problem for problem in found), found
    assert not any("s3cr3t-value" in problem for problem in found)


@pytest.mark.parametrize("prefixes", [
    [None], [["gho_"]], [["gho_", "ghu_"], ["okta_"]], [["a_"], ["b_"], ["c_"]],
], ids=["one issuer, no prefixes", "one issuer, a prefix", "two issuers, apart", "three issuers"])
def test_unambiguous_routing_loads(tmp_path: Path, prefixes: list[list[str] | None]) -> None:
    loads(tmp_path, issuers(*prefixes))
