"""auth.dpop: DPoP-bound access tokens (RFC 9449) — which proofs are accepted, and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gatekeeper.settings.common import AsymmetricAlgorithm, FrozenModel


class DpopSettings(FrozenModel):
    enabled: bool = Field(
        default=False,
        description="Accept `Authorization: DPoP <token>` with one `DPoP` proof (RFC 9449); "
                    "a DPoP-bound token (`cnf.jkt`) is refused as `Bearer` either way.",
    )
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["ES256", "ES384", "PS256", "RS256", "EdDSA"],
        min_length=1,
        description="Proof `alg` allow-list; asymmetric only (never `none` or HMAC). "
                    "Sent in `WWW-Authenticate: DPoP algs=...`.",
    )
    iat_window_seconds: int = Field(
        default=60, ge=5, le=600,
        description="A proof's `iat` may be this far in the past or future; a `jti` is "
                    "remembered this long (twice, to cover both sides).",
    )
    replay_store: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where seen `jti`s live: `memory` (per process) or `redis` (SET NX, shared by "
                    "every replica; Redis down → 503).",
    )
    replay_cache_size: int = Field(
        default=100_000, ge=1000, le=10_000_000,
        description="`memory` store: most `jti`s remembered; when full, proofs are refused (401) "
                    "rather than forgetting one still inside its window.",
    )
    replay_cache_key_share: float = Field(
        default=0.25, gt=0, le=1,
        description="`memory` store: the share of `replay_cache_size` the proofs of one key (a "
                    "token's `cnf.jkt`) may fill; a holder sending proofs faster is refused (401) "
                    "while its share is full, and other holders keep theirs.",
    )
    max_proof_bytes: int = Field(default=4096, ge=512, le=16384, description="Longer proofs: 401.")
    require_nonce: bool = Field(
        default=False,
        description="Require a server nonce in each proof (RFC 9449 §8): a proof without the "
                    "current one gets 401 `use_dpop_nonce` and a `DPoP-Nonce` header; past half "
                    "its lifetime, an accepted one brings the next in `DPoP-Nonce` (§8.2).",
    )
    nonce_secret_file: str | None = Field(
        default=None,
        description="With `require_nonce`: a file holding ≥ 32 bytes shared by every replica, so "
                    "each accepts the others' nonces. Default: a random secret per process.",
    )
    nonce_lifetime_seconds: int = Field(
        default=300, ge=30, le=3600, description="A nonce is accepted this long after it is issued.",
    )

    @property
    def replay_cache_holder_size(self) -> int:
        """Most `jti`s the memory store keeps for one proof key."""
        return max(1, int(self.replay_cache_size * self.replay_cache_key_share))

    @model_validator(mode="after")
    def _nonce_secret(self) -> DpopSettings:
        if self.nonce_secret_file is not None:
            try:
                size = len(Path(self.nonce_secret_file).read_bytes().strip())
            except OSError as exc:
                raise ValueError(f"nonce_secret_file: cannot be read ({exc.strerror})") from exc
            if size < 32:
                raise ValueError("nonce_secret_file: holds fewer than 32 bytes")
        return self
