"""docs/forward-auth.md stays true: the per-proxy table and the carriers are the code's own."""

from __future__ import annotations

import re

import pytest

from gatekeeper.settings.forward_auth import METHOD_CARRIERS, PROXY_SOURCES, URI_CARRIERS
from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "forward-auth.md").read_text()


@pytest.mark.parametrize("proxy", sorted(PROXY_SOURCES))
def test_the_table_names_each_proxys_headers(proxy: str) -> None:
    row = re.search(rf"^\| `{proxy}`[^|]*\|([^|]*)\|([^|]*)\|", DOC, flags=re.M)
    assert row, f"no row for {proxy}"
    uri, method = PROXY_SOURCES[proxy]
    assert (uri or "own target") in row.group(1)
    assert (method or "own method") in row.group(2)


@pytest.mark.parametrize("carrier", [*URI_CARRIERS, *METHOD_CARRIERS])
def test_every_carrier_is_listed_and_the_recipe_keeps_it_from_the_app(carrier: str) -> None:
    assert f"`{carrier}`" in DOC
    recipe = re.search(r"```nginx\n(.*?)```", DOC, flags=re.S)
    assert recipe and f'proxy_set_header {carrier} "";' in recipe.group(1)


def test_the_recipe_sets_both_headers_gatekeeper_reads_for_nginx() -> None:
    recipe = re.search(r"```nginx\n(.*?)```", DOC, flags=re.S)
    assert recipe
    uri, method = PROXY_SOURCES["nginx"]
    assert f"proxy_set_header {uri} $request_uri;" in recipe.group(1)
    assert f"proxy_set_header {method} $request_method;" in recipe.group(1)
