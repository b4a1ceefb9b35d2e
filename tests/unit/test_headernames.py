"""headernames.fold: the one reading of a header name that every strip list compares."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.edge.method_override import refuse_method_override
from gatekeeper.errors import BadRequest
from gatekeeper.headernames import fold, is_forwarding, is_override, never_from_client
from gatekeeper.settings.forward_auth import METHOD_CARRIERS, URI_CARRIERS

# RFC 9110 token characters besides letters and digits: all of them are accepted by the parser.
_SEPARATORS = "!#$%&'*+-.^_`|~"
_words = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
                  min_size=1, max_size=5)


@settings(deadline=None)  # a loaded machine is not a failure
@given(_words, st.data())
def test_every_spelling_of_a_name_folds_to_its_canonical_form(words: list[str], data: st.DataObject) -> None:
    spelled = words[0]
    for word in words[1:]:
        separator = data.draw(st.sampled_from(_SEPARATORS))
        spelled += separator + "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert fold(spelled.encode()) == "-".join(words).encode()


@settings(deadline=None)  # a loaded machine is not a failure
@given(st.binary(max_size=64))
def test_a_folded_name_holds_only_lower_case_letters_digits_and_dashes(name: bytes) -> None:
    folded = fold(name)
    assert len(folded) == len(name)
    assert set(folded) <= set(b"abcdefghijklmnopqrstuvwxyz0123456789-")
    assert fold(folded) == folded


@pytest.mark.parametrize(("name", "stripped"), [
    (b"X_Forwarded_For", True), (b"x.forwarded.prefix", True), (b"X~Original~URL", True),
    (b"X-Envoy-Original-Path", True), (b"X_HTTP_Method", True), (b"true.client.ip", True),
    (b"X-Forwarded", True), (b"Remote_User", True), (b"X-Amzn-Oidc-Identity", True),
    (b"X-Goog-Authenticated-User-Email", True), (b"X-MS-CLIENT-PRINCIPAL-NAME", True),
    (b"ssl_client_verify", True), (b"X-Forwardedx", False), (b"X-Benign", False), (b"Accept", False),
])
def test_the_class_that_never_comes_from_a_client(name: bytes, stripped: bool) -> None:
    assert never_from_client(fold(name)) is stripped


@settings(deadline=None)  # a loaded machine is not a failure
@given(st.lists(st.sampled_from(["a", "b", "page", "sort", "method", "_methods", "q"]), max_size=5),
       st.text("abcDEF%5F=", max_size=8))
def test_a_query_without_an_override_parameter_passes(names: list[str], value: str) -> None:
    refuse_method_override("&".join(f"{n}={value.replace('&', '')}" for n in names).encode())


@pytest.mark.parametrize("query", [b"_method=PUT", b"a&%5F%6Dethod=PUT", b"%20_method=PUT", b"_method_=x"])
def test_an_override_parameter_is_refused(query: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        refuse_method_override(query)
    assert caught.value.code == "method_override"


def test_every_header_forward_auth_reads_a_uri_or_method_from_is_stripped_before_the_app() -> None:
    """Forward-auth's carriers (settings/forward_auth.py) and the strip classes here are two
    lists with two jobs: a carrier missing here would reach the app as a route or a method."""
    for name in (*URI_CARRIERS, *METHOD_CARRIERS):
        folded = fold(name.encode())
        assert is_override(folded) or is_forwarding(folded), name
