"""docs/providers.md: every YAML example is a config gatekeeper accepts, and every provider has one.

Each ```yaml block is loaded with the real loader (``load_settings``: YAML, ${ENV} expansion,
validation), so a renamed or removed key fails here, naming the block's line. A block preceded by
``<!-- fragment -->`` is not a whole config (a Dex config, a lone ``auth:`` excerpt): it only has
to be a YAML mapping. The doc's configs carry no ``policy:`` section: ``load_settings`` does not
read policy files, so a policy there would go unchecked; the test refuses one instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gatekeeper.clients.client_auth import client_key_problems
from tests.support.assertion import write_private_key
from tests.support.docs import Block, load_block, yaml_blocks
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "providers.md"
BLOCKS = yaml_blocks(DOC.read_text(encoding="utf-8"))
CONFIGS = [b for b in BLOCKS if not b.fragment]
FRAGMENTS = [b for b in BLOCKS if b.fragment]


def test_the_doc_has_configs_and_fragments() -> None:
    assert len(CONFIGS) >= 7
    assert FRAGMENTS, "the Dex config and the roles_claims excerpt are marked as fragments"


KEY_FILE = re.compile(r"^\s*key_file:\s*(\S+)", re.MULTILINE)


def with_key_files(block: Block, tmp_path: Path) -> list[Path]:
    """The block's ``key_file``s (relative, as in the doc) written as RSA keys beside it."""
    written = []
    for name in sorted(set(KEY_FILE.findall(block.text))):
        path = tmp_path / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private_key(path, "RS256")
        written.append(path)
    return written


@pytest.mark.parametrize("block", CONFIGS, ids=[b.id for b in CONFIGS])
def test_every_config_block_is_a_valid_config(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_key_files(block, tmp_path)
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.oidc is not None, "a provider guide's config sets up browser login"
    assert settings.policy is None, "keep `policy:` out of the doc's configs (its files are not checked)"


@pytest.mark.parametrize("block", FRAGMENTS, ids=[b.id for b in FRAGMENTS])
def test_every_fragment_is_yaml(block: Block) -> None:
    assert isinstance(yaml.safe_load(block.text), dict)


# The facts each provider's config must keep: the issuer's shape (trailing slash or not, v2.0,
# /realms/), whether offline_access is requested (None: either), whether end_session is on.
PROVIDERS = [
    ("Keycloak", r"https://[^/]+/realms/[^/]+", False, True),
    ("Auth0", r"https://[^/]+\.auth0\.com/", True, True),
    ("Okta", r"https://[^/]+\.okta\.com(/oauth2/[^/]+)?", True, True),
    ("Microsoft Entra ID", r"https://login\.microsoftonline\.com/[^/]+/v2\.0", True, True),
    ("Google", r"https://accounts\.google\.com", False, False),
    ("Dex", r"https://.*[^/]", True, False),
    ("Any OpenID Certified provider", r"https?://.+", None, None),
]


@pytest.mark.parametrize(("heading", "issuer", "offline_access", "end_session"), PROVIDERS,
                         ids=[p[0] for p in PROVIDERS])
def test_every_provider_section_has_a_validated_config(
    heading: str,
    issuer: str,
    offline_access: bool | None,
    end_session: bool | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sections = [b.section for b in BLOCKS]
    assert heading in sections, f"no YAML block under '## {heading}'"
    configs = [b for b in CONFIGS if b.section == heading]
    assert configs, f"'## {heading}' has only fragments: it needs one complete config"
    with_key_files(configs[0], tmp_path)
    settings = load_block(configs[0], tmp_path, monkeypatch)
    assert settings.oidc is not None
    (provider,) = settings.oidc.providers
    assert re.fullmatch(issuer, provider.issuer), f"{heading}: issuer {provider.issuer!r}"
    if offline_access is not None:
        assert ("offline_access" in provider.scopes) is offline_access, f"{heading}: scopes"
    if end_session is not None:
        assert provider.end_session is end_session, f"{heading}: end_session"


def test_googles_config_asks_for_a_refresh_token_in_googles_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [config, *_] = [b for b in CONFIGS if b.section == "Google"]
    settings = load_block(config, tmp_path, monkeypatch)
    assert settings.oidc is not None
    (provider,) = settings.oidc.providers
    assert provider.extra_auth_params == {"access_type": "offline", "prompt": "consent"}
    assert "offline_access" not in provider.scopes  # Google ignores it


def test_the_several_providers_example_selects_by_host_and_by_chooser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [b for b in CONFIGS if b.section == "Several providers"]
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.oidc is not None
    providers = settings.oidc.providers
    assert len(providers) >= 2
    assert any(p.hosts for p in providers) and any(not p.hosts for p in providers)


def test_the_introspection_example_introspects_opaque_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [b for b in CONFIGS if b.section == "Opaque access tokens (introspection)"]
    settings = load_block(block, tmp_path, monkeypatch)
    (issuer,) = settings.auth.issuers
    assert issuer.introspection is not None
    assert issuer.introspection.mode == "opaque_only"
    assert issuer.introspection.endpoint is None  # discovered


def test_the_dpop_example_is_a_config_that_turns_dpop_on_with_a_shared_replay_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DPoP block is a fragment (an API, no browser login) but a whole config all the same."""
    [block] = [b for b in FRAGMENTS if "dpop:" in b.text]
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.auth.dpop.enabled and settings.auth.dpop.replay_store == "redis"
    assert settings.uses_redis


def test_the_token_exchange_examples_load_with_a_client_and_their_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Keycloak example (a whole config with browser login) and the generic fragment (an API
    alone, still a whole config) both load, each issuer with an exchange client."""
    section = "Token exchange for the app (RFC 8693)"
    (keycloak,) = [b for b in CONFIGS if b.section == section]
    settings = load_block(keycloak, tmp_path, monkeypatch)
    (issuer,) = settings.auth.issuers
    assert issuer.token_exchange is not None and issuer.token_exchange.token_endpoint is None
    assert [r.audience for r in settings.token_exchange] == ["orders-api", "billing-api"]
    assert settings.header_section().exchange_headers == ("X-Auth-Request-Access-Token",
                                                          "X-Billing-Token")
    (generic,) = [b for b in FRAGMENTS if b.section == section]
    settings = load_block(generic, tmp_path, monkeypatch)
    (rule,) = settings.token_exchange
    assert rule.resource == "https://reports.example.com/" and rule.audience is None


def test_the_private_key_jwt_config_signs_with_its_key_at_login_and_introspection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (block,) = [b for b in CONFIGS if b.section == "Client authentication with a key (private_key_jwt)"]
    assert with_key_files(block, tmp_path), "the example names its key file"
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.oidc is not None
    (provider,) = settings.oidc.providers
    (issuer,) = settings.auth.issuers
    assert provider.token_auth_method == "private_key_jwt" and provider.client_secret is None
    assert issuer.introspection is not None and issuer.introspection.auth_method == "private_key_jwt"
    assert client_key_problems(settings) == []  # what `gatekeeper check` runs on the key files
