"""RFC 7662 token introspection at one issuer: opaque access tokens (or all, ``mode: always``).

The answer is trusted only as far as it says exactly what a JWT would: ``active`` is the JSON
``true`` (RFC 7662 §2.2: a string ``"true"``, a missing member or anything else is inactive),
``iss`` when present is this issuer, ``aud`` holds one of the issuer's audiences, ``exp`` is a
number in the future, no ``cnf`` and no token type other than an access token (a refresh
token or a sender-constrained token must not pass as a bearer token: RFC 8705 §3, RFC 9449 §6).
The claims then become a principal through the bearer path's own mapping.

Cache: one per issuer (an answer is the issuer's word about the token, never another's), keyed
by the SHA-256 of the token (the token itself is not kept as a key); an active answer lives
until the token's ``exp`` and at most ``max_ttl_seconds``, an inactive one
``negative_ttl_seconds``. Refusals are kept apart, in an LRU of their own: anyone can make up
tokens for the issuer to refuse, and in one shared LRU they would evict the callers' active
answers, so each real request would cost the issuer a call again (CWE-400). Concurrent
requests with one token share one call (single-flight).
An endpoint that is down, slow, answers non-2xx, non-JSON or more than ``max_bytes``: 503 for
that token, nothing cached (ControlPlane bounds the deadline and the body).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from gatekeeper.clients.client_auth import ClientAuth
from gatekeeper.clients.controlplane import ControlPlane, FetchError
from gatekeeper.clients.discovery import discovered_endpoint
from gatekeeper.clients.singleflight import SingleFlight, call_result
from gatekeeper.errors import IntrospectionUnavailable, InvalidToken, RateLimited
from gatekeeper.lru import LRU
from gatekeeper.principal import Principal
from gatekeeper.settings import AuthSettings, IntrospectionSettings, IssuerSettings
from gatekeeper.tokens.claims import is_finite_number

if TYPE_CHECKING:
    import httpx

    from gatekeeper.metrics import Metrics

log = logging.getLogger("gatekeeper.introspection")

# (token, claims, issuer, now) → (principal, expires_at): the bearer path's mapping.
MakePrincipal = Callable[[str, dict[str, Any], str, float], tuple[Principal, float]]
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"})


@dataclass(frozen=True, slots=True)
class Answer:
    """One cached answer: a principal, or the refusal (code, description) of an inactive token."""

    principal: Principal | None
    refusal: tuple[str, str]
    until: float  # wall clock

    def result(self) -> Principal:
        if self.principal is None:
            raise InvalidToken(self.refusal[1], code=self.refusal[0])
        return self.principal


class CallBudget:
    """At most ``calls`` introspection calls per client address a minute, in this process.
    Every made-up token is a call (no cache holds it): without a bound, one client sending them
    makes the issuer answer one call per request, and real callers' new tokens wait behind it
    (the issuer's own rate limits, then 503s). Cached answers and shared in-flight calls cost
    nothing."""

    __slots__ = ("_calls", "_clients", "_clock")

    def __init__(self, calls: int, clock: Callable[[], float], clients: int = 10_000) -> None:
        self._calls = calls
        self._clock = clock
        self._clients: LRU[str, list[float]] = LRU(clients)  # address → [window start, calls]

    def take(self, client: str) -> int:
        """0: the call may be made (and is counted); else the whole seconds until one may."""
        now = self._clock()
        window = self._clients.get(client)
        if window is None or now - window[0] >= 60:
            self._clients.put(client, [now, 1])
            return 0
        if window[1] >= self._calls:
            return max(1, math.ceil(window[0] + 60 - now))
        window[1] += 1
        return 0


class Introspector:
    """The introspection endpoint of one issuer, with its own answer cache."""

    def __init__(self, issuer: IssuerSettings, auth: AuthSettings, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time, *, client: ClientAuth | None = None,
                 metrics: Metrics | None = None) -> None:
        settings = issuer.introspection
        if settings is None:
            raise ValueError(f"{issuer.issuer}: no introspection settings")
        self._metrics = metrics
        self._budget = (CallBudget(settings.calls_per_client_per_minute, clock)
                        if settings.calls_per_client_per_minute else None)
        self.issuer = issuer.issuer
        self.settings: IntrospectionSettings = settings
        # ``client``: built by the app with its config key (auth.issuers.N.introspection), which
        # a bad key file is refused with.
        self._client = client or ClientAuth.of(settings, issuer=issuer.issuer,
                                               key_name=f"the introspection of {issuer.issuer}")
        self._audience = frozenset(issuer.audience)
        self._leeway = auth.leeway_seconds
        self._http = ControlPlane(http, deadline_seconds=settings.timeout_seconds,
                                  max_bytes=settings.max_bytes)
        # Discovery documents are larger than an introspection answer; bounded like JWKS ones.
        self._discovery = ControlPlane(http, deadline_seconds=auth.jwks_fetch_timeout_seconds,
                                       max_bytes=auth.jwks_max_bytes)
        self._endpoint = settings.endpoint
        self._clock = clock
        self.cache: LRU[bytes, Answer] = LRU(settings.cache_size)  # active answers
        self.refusals: LRU[bytes, Answer] = LRU(settings.cache_size)  # made-up tokens land here
        self._calls: SingleFlight[bytes, Answer] = SingleFlight(self._landed)

    @property
    def always(self) -> bool:
        return self.settings.mode == "always"

    def cached(self, digest: bytes, now: float) -> Answer | None:
        for cache in (self.cache, self.refusals):
            answer = cache.get(digest)
            if answer is not None:
                if now < answer.until:
                    return answer
                cache.discard(digest)
        return None

    async def introspect(self, token: str, digest: bytes, make: MakePrincipal,
                         client: Callable[[], str] = lambda: "") -> Answer:
        """This issuer's answer about ``token`` (``digest``: its SHA-256), cached or asked;
        ``client``: the caller's address, whose calls ``calls_per_client_per_minute`` bounds
        (read only for a call: a cached answer pays nothing for it)."""
        answer = self.cached(digest, self._clock())
        if answer is not None:
            return answer
        if not self._calls.in_flight(digest):  # a new call: the client's budget pays for it
            wait = self._budget.take(client()) if self._budget is not None else 0
            if wait:
                raise RateLimited(limit=self.settings.calls_per_client_per_minute,
                                  window_seconds=60, retry_after=wait,
                                  rule=f"introspection of {self.issuer}")
        return await self._calls.call(digest, lambda: self._ask(token, make))

    def _landed(self, digest: bytes, task: asyncio.Task[Answer]) -> None:
        answer = call_result(task)
        if self._metrics is not None and not task.cancelled():
            result = ("unavailable" if answer is None
                      else "accepted" if answer.principal is not None else "refused")
            self._metrics.backchannel_calls.labels(kind="introspection", issuer=self.issuer,
                                                   result=result).inc()
        if answer is not None and answer.until > self._clock():  # a failure: nothing kept
            kept, other = ((self.cache, self.refusals) if answer.principal is not None
                           else (self.refusals, self.cache))
            other.discard(digest)
            kept.put(digest, answer)

    async def _ask(self, token: str, make: MakePrincipal) -> Answer:
        try:
            endpoint = await self._endpoint_url()
            headers = {"content-type": "application/x-www-form-urlencoded",
                       "accept": "application/json"}
            form = {"token": token, "token_type_hint": "access_token"}
            auth = await self._client.parts(endpoint)  # RFC 7662 §2.1: any client authentication
            headers |= auth.headers
            form |= auth.form
            fetched = (await self._http.call("POST", endpoint, headers=headers,
                                             content=urlencode(form))).raise_for_status()
            body = fetched.json()
        except (FetchError, ValueError) as exc:
            # The text names the URL without credentials, never the token or the secret.
            log.warning("introspection failed", extra={"issuer": self.issuer, "error": str(exc)[:300]})
            raise IntrospectionUnavailable("the token's issuer could not be asked") from exc
        if not isinstance(body, dict):
            raise IntrospectionUnavailable("the token's issuer answered something else than JSON")
        now = self._clock()
        try:
            principal, expires_at = make(token, self._claims(body, now), self.issuer, now)
        except InvalidToken as exc:
            until = now + self.settings.negative_ttl_seconds
            return Answer(None, (exc.code, exc.description), until)
        return Answer(principal, ("", ""), min(expires_at, now + self.settings.max_ttl_seconds))

    def _claims(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        if body.get("active") is not True:
            raise InvalidToken("token is not active", code="inactive_token")
        issuer = body.get("iss", self.issuer)
        if issuer != self.issuer:
            raise InvalidToken("issuer not accepted", code="bad_issuer")
        token_type = body.get("token_type")
        if token_type is not None and (not isinstance(token_type, str)
                                       or token_type.lower() not in _ACCESS_TOKEN_TYPES):
            raise InvalidToken("the token is typed for another use", code="wrong_token_type")
        typ = body.get("typ")  # Keycloak's own kind: Bearer, Refresh, Offline, ID
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise InvalidToken("the token is typed for another use", code="wrong_token_type")
        if "cnf" in body:
            raise InvalidToken("a key-bound token needs a proof gatekeeper cannot check",
                               code="bound_token")
        for name in ("exp", "nbf", "iat"):
            value = body.get(name)
            if value is not None and not is_finite_number(value):
                raise InvalidToken(f"claim {name} is not a number", code="invalid_claim")
        if body.get("exp") is None:
            raise InvalidToken("missing claim exp", code="missing_claim")
        if body["exp"] <= now - self._leeway:
            raise InvalidToken("token expired", code="expired")
        if body.get("nbf") is not None and body["nbf"] > now + self._leeway:
            raise InvalidToken("token not yet valid (nbf/iat)", code="not_yet_valid")
        audience = body.get("aud")
        if audience is None:
            raise InvalidToken("missing claim aud", code="missing_claim")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not self._audience.intersection(
                a for a in audiences if isinstance(a, str)):
            raise InvalidToken("audience not accepted", code="bad_audience")
        claims = {key: value for key, value in body.items() if key != "active"}
        claims["iss"] = self.issuer
        return claims

    async def _endpoint_url(self) -> str:
        if self._endpoint is None:
            self._endpoint = await discovered_endpoint(self._discovery, self.issuer,
                                                       "introspection_endpoint")
        return self._endpoint
