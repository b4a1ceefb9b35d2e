"""Builds the DPoP checker from the settings (auth.dpop), once, in the lifespan."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from gatekeeper.authn.dpop import DpopProofs
from gatekeeper.authn.dpop_replay import MemoryReplay, Nonces, RedisReplay, ReplayCache
from gatekeeper.clients.redis import RedisClient
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings


def dpop_proofs(settings: Settings, redis: RedisClient | None,
                is_trusted: Callable[[str], bool]) -> DpopProofs | None:
    config = settings.auth.dpop
    if not config.enabled:
        return None
    replay: ReplayCache
    if config.replay_store == "redis":
        if redis is None:
            raise ConfigError(["auth.dpop.replay_store: redis needs redis.url"])
        replay = RedisReplay(redis, settings.redis.key_prefix, settings.redis.timeout_seconds)
    else:
        replay = MemoryReplay(config.replay_cache_size, config.replay_cache_holder_size)
    nonces = None
    if config.require_nonce:
        secret = (Path(config.nonce_secret_file).read_bytes().strip()
                  if config.nonce_secret_file else secrets.token_bytes(32))
        nonces = Nonces(secret, config.nonce_lifetime_seconds)
    return DpopProofs(config, replay, is_trusted, nonces)
