"""The discovery document gatekeeper accepts: gatekeeper/oidc/provider.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gatekeeper.metrics import Metrics
from gatekeeper.oidc.provider import Provider, TokenSet, parse_discovery
from gatekeeper.settings import AuthSettings, OidcSettings, ProviderSettings

DISCOVERY = {"issuer": "https://op.example", "authorization_endpoint": "https://op.example/auth",
             "token_endpoint": "https://op.example/token"}


@pytest.mark.parametrize("field, value", [
    ("issuer", "https://op.example/"),                                  # not the exact issuer
    ("authorization_endpoint", "https://op.example/a\r\nSet-Cookie: x=1"),  # header injection
    ("authorization_endpoint", "https://op.example/ä"),                 # not ASCII: a Location
    ("authorization_endpoint", "javascript:alert(1)"),
    ("token_endpoint", None),
    ("userinfo_endpoint", "ftp://op.example/userinfo"),
])
def test_a_discovery_document_gatekeeper_cannot_use_safely_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        parse_discovery({**DISCOVERY, field: value}, "https://op.example")


def test_discovery_reads_the_optional_endpoints_and_the_rfc9207_flag() -> None:
    endpoints = parse_discovery({**DISCOVERY, "end_session_endpoint": "https://op.example/logout",
                                 "authorization_response_iss_parameter_supported": True},
                                "https://op.example")
    assert endpoints.end_session == "https://op.example/logout" and endpoints.userinfo is None
    assert endpoints.iss_parameter is True


# An expires_in no number a clock can add: Infinity/NaN (Python's JSON reader takes them) or an
# integer no float holds. int() of those raised OverflowError/ValueError: a 500 at the login's
# callback or a session's refresh. Unusable, it is as if absent (RFC 6749 §5.1: RECOMMENDED).
@pytest.mark.parametrize("expires_in", ["Infinity", "-Infinity", "NaN", "1" + "0" * 400],
                         ids=["infinity", "minus-infinity", "nan", "400-digits"])
def test_an_expires_in_no_clock_can_add_is_as_if_absent(expires_in: str) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/token"
        body = '{"access_token": "at", "token_type": "Bearer", "expires_in": ' + expires_in + '}'
        return httpx.Response(200, headers={"content-type": "application/json"},
                              stream=httpx.ByteStream(body.encode()))

    async def main() -> TokenSet:
        settings = ProviderSettings(id="op", issuer="https://op.example", client_id="gk",
                                    client_secret="s")
        oidc = OidcSettings(providers=[settings], redirect_url="https://gk.example/oauth2/callback")
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            provider = Provider(settings, oidc, AuthSettings(), http, Metrics())
            provider._endpoints = parse_discovery(DISCOVERY, "https://op.example")
            return await provider.refresh("refresh-0")

    tokens = asyncio.run(main())
    assert (tokens.access_token, tokens.access_expires_at) == ("at", None)
