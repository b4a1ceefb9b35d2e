"""token_exchange and auth.issuers[].token_exchange (gatekeeper/settings/token_exchange.py):
refused at start, naming the key, where a rule could not work or its header would clash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings

ISSUER = {"issuer": "https://idp.test", "audience": ["api"],
          "token_exchange": {"client_id": "gk", "client_secret": "s3cret"}}
ROUTE = {"paths": ["/orders/*"], "audience": "orders"}


def _config(route: dict[str, Any] | None = None, issuer: dict[str, Any] | None = None,
            **top: Any) -> dict[str, Any]:
    return {"auth": {"issuers": [{**ISSUER, **(issuer or {})}]},
            "token_exchange": [{**ROUTE, **(route or {})}], **top}


def problems(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    return refused.value.problems


@pytest.mark.parametrize(("config", "key", "reason"), [
    ({"token_exchange": [ROUTE], "auth": {"issuers": [{"issuer": "https://idp.test",
                                                       "audience": ["api"]}]}},
     "token_exchange", "no issuer has a client"),
    (_config({"audience": None}), "token_exchange.0", "give audience or resource"),
    (_config({"resource": "orders"}), "token_exchange.0.resource", "absolute URI"),
    (_config({"resource": "https://orders.test/#x"}), "token_exchange.0.resource", "absolute URI"),
    (_config({"scope": ["a b"]}), "token_exchange.0.scope", "scope token"),
    (_config({"paths": ["orders/*"]}), "token_exchange.0.paths", "start with '/'"),
    (_config({"methods": ["GE T"]}), "token_exchange.0.methods", "not an HTTP method"),
    (_config({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}),
     "token_exchange.0.requested_token_type", ""),
    (_config({"header": "Authorization"}), "token_exchange.0.header", "strips or sets itself"),
    (_config({"header": "X-Forwarded-For"}), "token_exchange.0.header", "strips or sets itself"),
    (_config({"header": "x-auth-request-USER"}), "token_exchange.0.header", "headers (X-Auth-Request-User)"),
    ({**_config({"header": "X-Client-Cert-Pem"}), "trusted_proxies": ["10.0.0.1"],
      "auth": {"issuers": [ISSUER], "client_certificate_header": "x-client-cert-pem"}},
     "token_exchange.0.header", "auth.client_certificate_header"),
    (_config({"header": "X Token"}), "token_exchange.0.header", "a header name"),
    (_config(issuer={"token_exchange": {"client_id": "gk", "client_secret": "s",
                                        "auth_method": "private_key_jwt"}}),
     "auth.issuers.0.token_exchange.private_key_jwt", "required with auth_method private_key_jwt"),
    (_config(issuer={"token_exchange": {"client_id": "gk", "client_secret": "s",
                                        "auth_method": "client_secret_jwt"}}),
     "auth.issuers.0.token_exchange.auth_method", ""),
    (_config(issuer={"token_exchange": {"client_id": "gk", "client_secret": "s",
                                        "token_endpoint": "ftp://idp.test/token"}}),
     "auth.issuers.0.token_exchange.token_endpoint", "http(s) URL"),
    (_config(issuer={"token_exchange": {"client_id": "gk"}}),
     "auth.issuers.0.token_exchange.client_secret", ""),
], ids=["rules without any issuer client", "neither audience nor resource", "a relative resource",
        "a resource with a fragment", "a scope with a space", "a path not starting with /",
        "a method that is no token", "asking for a refresh token", "the Authorization header",
        "a forwarding header", "an identity header in another spelling", "the certificate header",
        "not a header name", "a key method without its key", "an auth method it does not speak",
        "a token endpoint not http",
        "no client secret"])
def test_a_token_exchange_that_cannot_work_is_refused(
        tmp_path: Path, config: dict[str, Any], key: str, reason: str) -> None:
    found = problems(tmp_path, config)
    assert any(key in p and reason in p for p in found), found


def test_a_token_exchange_loads_and_its_headers_are_stripped_everywhere() -> None:
    settings = Settings.model_validate(_config(
        {"header": "X-Orders-Token", "scope": ["orders.read"], "resource": "https://orders.test/"},
        pass_access_token=True))
    assert settings.header_section().exchange_headers == ("X-Orders-Token",)
    # The default header may be the exchange's (it replaces the caller's token there).
    assert Settings.model_validate(_config()).token_exchange[0].header == "X-Auth-Request-Access-Token"


def test_the_client_secret_is_never_echoed(tmp_path: Path) -> None:
    found = problems(tmp_path, _config({"audience": None}, issuer={"token_exchange": {
        "client_id": "gk", "client_secret": "hunter2-secret", "timeout_seconds": 0}}))
    assert found and not any("hunter2" in p for p in found)
