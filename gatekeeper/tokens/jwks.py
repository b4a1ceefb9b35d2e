"""Signing keys of one issuer: discovery, JWKS fetch, background refresh, stale-on-failure.

Keys come only from the configured issuer's JWKS (explicit ``jwks_uri`` or discovery). A token's
own ``jku``, ``x5u`` or ``jwk`` header never causes a fetch and is never trusted (RFC 8725 §3.10).

Every fetch goes through ``ControlPlane`` (a total deadline and a size cap), and none holds
start-up: the first fetch runs in the background while gatekeeper already listens; a request
that comes before it ends waits for it (at most its deadline), then gets the keys or a 503.

An unknown kid may mean the issuer rotated its keys, so it triggers a fetch — at most one per
``jwks_min_refresh_seconds``, so a flood of made-up kids costs one fetch per interval. Only
those fetches count against that budget: the start-up and background fetches do not, so a
rotation right after start is picked up on its first token, not after the interval.

With ``workers > 1`` the workers share their fetches (``shared``: tokens/shared.py): one fetch
per issuer serves every worker, at start, on refresh and on a rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization

from gatekeeper.clients.controlplane import ControlPlane, Fetched, FetchError
from gatekeeper.errors import InvalidToken, KeysUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.shared import JwksDocument, SharedFetches

if TYPE_CHECKING:
    import httpx  # the control plane's client; calls go through ControlPlane

log = logging.getLogger("gatekeeper.jwks")

# Which JWK shapes may verify which algorithm: the key type must match the alg (RFC 7518 §3).
_KEY_SHAPE: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own "alg", when it names one
    key: Any  # a cryptography public key object
    fingerprint: bytes = b""  # SHA-256 of the public key (SPKI DER): the same kid, another key?

    def fits(self, alg: str) -> bool:
        shape = _KEY_SHAPE.get(alg)
        if shape is None:
            return False  # HS*, "none", anything unknown: no JWKS key verifies it
        kty, crv = shape
        if self.kty != kty or (self.alg is not None and self.alg != alg):
            return False
        if kty == "OKP":
            return self.crv in ("Ed25519", "Ed448")
        return crv is None or self.crv == crv


def parse_jwks(document: Any) -> list[SigningKey]:
    """Public signature keys from a JWKS document; symmetric and unusable keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: list[SigningKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # "oct" keys never verify anything here: no HMAC from a JWKS
        if entry.get("use", "sig") != "sig" or "d" in entry:
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        kid = entry.get("kid")
        spki = parsed.key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        keys.append(SigningKey(
            kid=kid if isinstance(kid, str) else None,
            kty=entry["kty"],
            crv=entry.get("crv"),
            alg=entry.get("alg") if isinstance(entry.get("alg"), str) else None,
            key=parsed.key,
            fingerprint=hashlib.sha256(spki).digest(),
        ))
    return keys


def cache_ttl(cache_control: str | None, auth: AuthSettings) -> float:
    match = _MAX_AGE.search(cache_control or "")
    ttl = int(match.group(1)) if match else auth.jwks_default_ttl_seconds
    return float(min(max(ttl, auth.jwks_min_ttl_seconds), auth.jwks_max_ttl_seconds))


class IssuerKeys:
    """The key cache of one issuer. One fetch at a time; the last good keys survive failures."""

    def __init__(
        self,
        issuer: IssuerSettings,
        auth: AuthSettings,
        http: httpx.AsyncClient,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        *,
        shared: Path | None = None,
    ) -> None:
        """``shared``: the directory through which the workers share their fetches."""
        self.issuer = issuer
        self._auth = auth
        self._http = ControlPlane(http, deadline_seconds=auth.jwks_fetch_timeout_seconds,
                                  max_bytes=auth.jwks_max_bytes)
        self._metrics = metrics
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._published: frozenset[tuple[str | None, bytes, str | None]] = frozenset()
        self._jwks_uri = issuer.jwks_uri
        self._inflight: asyncio.Task[bool] | None = None
        self._kid_refetch: asyncio.Task[None] | None = None
        self._last_kid_refetch = float("-inf")
        self._expires_at = 0.0
        self._failures = 0
        self.loaded_at: float | None = None  # wall clock of the last good fetch
        self.last_error: str | None = "not fetched yet"
        self._refresher: asyncio.Task[None] | None = None
        self._shared = None if shared is None else SharedFetches(
            shared, issuer.issuer,
            # A fetch holding the lock is a discovery and a JWKS call, each within the deadline.
            lock_seconds=2 * auth.jwks_fetch_timeout_seconds + 1,
            min_interval=auth.jwks_min_refresh_seconds,
            ttl=lambda cache_control: cache_ttl(cache_control, auth))
        self._fetched_at: float | None = None  # when the fetch of the keys in hand began

    @property
    def ready(self) -> bool:
        return bool(self._keys)

    def publishes(self, key: SigningKey) -> bool:
        """Whether the issuer's JWKS still holds this key (same kid, same public key, same
        ``alg`` binding). A verification cached with a key the issuer withdrew — rotated out,
        or revoked after a compromise — must not outlive it."""
        return (key.kid, key.fingerprint, key.alg) in self._published

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin the first fetch and the refresh loop; return at once (never waits on the issuer)."""
        self._begin()
        self._refresher = asyncio.create_task(self._refresh_loop(), name=f"jwks:{self.issuer.issuer}")

    async def aclose(self) -> None:
        for task in (self._refresher, self._kid_refetch, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _refresh_loop(self) -> None:
        while True:
            await self.refresh()  # the first time: joins the start-up fetch
            await asyncio.sleep(self.next_refresh_delay())

    def next_refresh_delay(self) -> float:
        """Seconds until the background loop fetches again."""
        if self._failures:
            # Back off while the issuer fails, with or without stale keys: once the TTL had run
            # out, stale keys used to mean a retry every second from every replica.
            return min(60.0, 2.0 ** min(self._failures, 6))
        # Refresh before the TTL runs out so requests never wait on a fetch.
        return max(1.0, (self._expires_at - self._clock()) * 0.9)

    # -- lookups --------------------------------------------------------------------------
    async def key_for(self, kid: str | None, alg: str) -> SigningKey:
        key = self._select(kid, alg)
        if key is not None:
            return key
        if not self._keys and self._inflight is not None:
            # The first fetch is still under way (just after start): wait for it, bounded by
            # its deadline, rather than refuse a token that is probably good.
            await asyncio.shield(self._inflight)
            key = self._select(kid, alg)
            if key is not None:
                return key
        if kid is not None and kid not in self._by_kid:
            await self._refetch_for_unknown_kid(kid)
            key = self._select(kid, alg)
            if key is not None:
                return key
        if not self._keys:
            raise KeysUnavailable("signing keys for this issuer are not available yet")
        if kid is None:
            raise InvalidToken("token has no kid and not exactly one key fits", code="no_kid")
        if kid in self._by_kid:
            raise InvalidToken("key type does not match the token's alg", code="key_mismatch")
        raise InvalidToken("unknown signing key", code="unknown_kid")

    async def _refetch_for_unknown_kid(self, kid: str) -> None:
        """Fetch again for an unknown kid, at most once per ``jwks_min_refresh_seconds``; every
        caller meanwhile waits for the fetch under way, if any, and no more."""
        now = self._clock()
        if self._kid_refetch is None and now - self._last_kid_refetch >= self._auth.jwks_min_refresh_seconds:
            self._last_kid_refetch = now
            self._kid_refetch = asyncio.create_task(self._after_inflight(kid))
            self._kid_refetch.add_done_callback(self._clear_kid_refetch)
        waiting = self._kid_refetch or self._inflight
        if waiting is not None:
            await asyncio.shield(waiting)

    async def _after_inflight(self, kid: str) -> None:
        if self._inflight is not None:
            # A start-up or background fetch may have left before the rotation: let it land,
            # then fetch once more only if it did not bring the kid.
            await asyncio.shield(self._inflight)
            if kid in self._by_kid:
                return
        await self.refresh(kid)

    def _clear_kid_refetch(self, _: asyncio.Task[None]) -> None:
        self._kid_refetch = None

    def _select(self, kid: str | None, alg: str) -> SigningKey | None:
        if kid is not None:
            key = self._by_kid.get(kid)
            return key if key is not None and key.fits(alg) else None
        candidates = [k for k in self._keys if k.fits(alg)]
        return candidates[0] if len(candidates) == 1 else None

    # -- fetching -------------------------------------------------------------------------
    async def refresh(self, kid: str | None = None) -> bool:
        """Fetch now, sharing one in-flight fetch among all callers (single-flight). ``kid``:
        the unknown kid the fetch is for, if any."""
        return await asyncio.shield(self._begin(kid))

    def _begin(self, kid: str | None = None) -> asyncio.Task[bool]:
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch(kid))
            self._inflight.add_done_callback(self._clear_inflight)
        return self._inflight

    def _clear_inflight(self, _: asyncio.Task[bool]) -> None:
        self._inflight = None

    async def _fetch(self, kid: str | None = None) -> bool:
        name = self.issuer.issuer
        downloaded: list[JwksDocument] = []
        try:
            if self._shared is None:
                document = await self._download()
                downloaded.append(document)
            else:
                async def download() -> JwksDocument:
                    downloaded.append(await self._download())
                    return downloaded[-1]

                shared = await self._shared.fetch(download, held=self._fetched_at, kid=kid)
                if shared is None:  # nothing newer; another worker spent this interval's budget
                    return bool(self._keys)
                document = shared
            keys = parse_jwks(json.loads(document.body))
            if not keys:
                raise ValueError("the JWKS holds no usable signature key")
        except Exception as exc:
            # Any failure (not only httpx.HTTPError: InvalidURL, or an ExceptionGroup holding an
            # OverflowError for a port > 65535) keeps the old keys; escaping here would fail the
            # start, end the refresh loop, or turn a request into a 500.
            if self.issuer.jwks_uri is None:
                self._jwks_uri = None  # came from discovery: read it again next time
            self._failures += 1
            self.last_error = _describe(exc)
            self._metrics.jwks_fetches.labels(issuer=name, result="failure").inc()
            log.warning("jwks fetch failed", extra={"issuer": name, "error": self.last_error,
                                                    "keeping_keys": len(self._keys)})
            return False
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys if k.kid is not None}
        self._published = frozenset((k.kid, k.fingerprint, k.alg) for k in keys)
        # Another worker's document is older than its fetch here: its TTL runs from its fetch.
        age = 0.0 if downloaded else max(0.0, time.monotonic() - document.fetched_at)
        self._expires_at = self._clock() - age + cache_ttl(document.cache_control, self._auth)
        self._fetched_at = document.fetched_at
        self._failures = 0
        self.last_error = None
        self.loaded_at = time.time()
        if downloaded:  # a document another worker fetched is no fetch of this one
            self._metrics.jwks_fetches.labels(issuer=name, result="success").inc()
        log.info("jwks loaded", extra={"issuer": name, "keys": len(keys)})
        return True

    async def _download(self) -> JwksDocument:
        """Discovery (unless ``jwks_uri`` is set or known), then the JWKS, checked to be JSON."""
        started = time.monotonic()
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        response = await self._get(self._jwks_uri)
        response.json()  # FetchError naming the URL when it is not JSON
        return JwksDocument(response.body, response.headers.get("cache-control"), started)

    async def _discover(self) -> str:
        url = self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = (await self._get(url)).json()
        if not isinstance(document, dict) or document.get("issuer") != self.issuer.issuer:
            # OIDC Discovery §4.3: the document must name exactly the issuer we asked about.
            raise ValueError("discovery document's issuer does not match")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("discovery document has no jwks_uri")
        return jwks_uri

    async def _get(self, url: str) -> Fetched:
        return (await self._http.get(url)).raise_for_status()


def _describe(exc: Exception) -> str:
    if isinstance(exc, FetchError | ValueError):
        return str(exc)[:300]  # ours (deadline, size, shape) or a JSON shape error
    return f"{type(exc).__name__}: {exc}"[:300]
