"""admin: who may open the policy page (/policy, /policy/explain) on the admin listener.

``admin_listen`` defaults to 0.0.0.0:9901 because Prometheus scrapes the pod there, so the page
is not for whoever reaches that port: only a peer in ``trusted_peers`` (loopback by default:
``kubectl port-forward`` arrives there) or a caller presenting ``token``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from gatekeeper.settings.common import MIN_SESSION_SECRET_BYTES, FrozenModel, check_networks

DEFAULT_TRUSTED_PEERS = ("127.0.0.0/8", "::1/128")


class AdminSettings(FrozenModel):
    """Access to the admin listener's policy page; /healthz /readyz /metrics stay open."""

    trusted_peers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUSTED_PEERS),
        description="Peers (IPs or CIDRs, the TCP peer itself: no X-Forwarded-For) served the "
        "policy page without a token; `[]` = the token only.")
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token (≥ 32 visible ASCII characters) that opens the policy page from any peer "
        "(`Authorization: Bearer …`); never logged.")

    @field_validator("trusted_peers")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_networks(value)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        text = value.get_secret_value()
        # Sent as a header value, compared byte for byte: visible ASCII only (RFC 6750 §2.1's
        # b64token is narrower still), so no client or proxy can re-encode or trim it.
        if not all("!" <= ch <= "~" for ch in text):
            raise ValueError("must be visible ASCII, without spaces (openssl rand -base64 32)")
        if len(text) < MIN_SESSION_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SESSION_SECRET_BYTES} characters "
                             "(openssl rand -base64 32)")
        return value
