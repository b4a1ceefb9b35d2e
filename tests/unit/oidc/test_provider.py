"""The discovery document gatekeeper accepts: gatekeeper/oidc/provider.py."""

from __future__ import annotations

import pytest

from gatekeeper.oidc.provider import parse_discovery

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
