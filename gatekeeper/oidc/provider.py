"""One OpenID Provider: its discovered endpoints, its keys, and the protocol calls (Authlib).

Authlib's protocol layer builds the authorization URL (PKCE S256) and the token requests,
clients/client_auth.py the client authentication (client_secret_basic / _post, private_key_jwt,
none); the shared control-plane httpx client sends them, through ``ControlPlane`` (a total
deadline and a size cap on every call). Not Authlib's stateful HTTP client: it remembers the
last token it fetched, so a shared one would carry one user's tokens into the next call.
Userinfo is a plain GET with the user's own access token. Discovery at start runs in the
background: a slow provider never holds start-up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gatekeeper.clients.client_auth import ClientAuth
from gatekeeper.clients.controlplane import ControlPlane, FetchError
from gatekeeper.errors import LoginFailed, ProviderUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.idtoken import IdTokenRules
from gatekeeper.settings import AuthSettings, IssuerSettings, OidcSettings, ProviderSettings
from gatekeeper.tokens.claims import is_finite_number
from gatekeeper.tokens.jwks import IssuerKeys

if TYPE_CHECKING:
    import httpx  # the control plane's client; calls go through ControlPlane

log = logging.getLogger("gatekeeper.oidc")

# A token endpoint's error codes (RFC 6749 §5.2); another value is "other": the code becomes a
# reason, a log field and a metric label, which must come from a fixed set.
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant",
                          "unauthorized_client", "unsupported_grant_type", "invalid_scope"})
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")
_RETRY_SECONDS = 5.0  # after a failed discovery, requests retry at most this often


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What discovery told us (OpenID Connect Discovery 1.0 §3)."""

    authorization: str
    token: str
    userinfo: str | None
    end_session: str | None
    iss_parameter: bool  # RFC 9207: the provider adds iss to its authorization responses


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    access_expires_at: int | None


class IssuerMismatch(ValueError):
    """The discovery document names another issuer than the configured one: often the same
    provider written differently (a trailing '/', http for https), which the message says."""

    def __init__(self, found: Any, configured: str) -> None:
        self.found = found if isinstance(found, str) else None
        shown = repr(found)[:200]
        super().__init__(f"its discovery document names another issuer, {shown}, than the "
                         f"configured {configured!r}; the two must be equal character for "
                         "character (a trailing '/' counts)")


def parse_discovery(document: Any, issuer: str) -> Endpoints:
    if not isinstance(document, dict):
        raise ValueError("the discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        # Discovery §4.3: exactly the issuer we asked about, or a mix-up is possible.
        raise IssuerMismatch(document.get("issuer"), issuer)

    def url(name: str) -> str:
        value = document.get(name)
        # Printable ASCII only: it becomes a Location header.
        if (not isinstance(value, str) or not value.isascii() or _UNSAFE_URL.search(value)
                or urlsplit(value).scheme not in ("https", "http")):
            raise ValueError(f"the discovery document has no usable {name}")
        return value

    def optional_url(name: str) -> str | None:
        return None if document.get(name) is None else url(name)

    return Endpoints(
        authorization=url("authorization_endpoint"), token=url("token_endpoint"),
        userinfo=optional_url("userinfo_endpoint"),
        end_session=optional_url("end_session_endpoint"),
        iss_parameter=document.get("authorization_response_iss_parameter_supported") is True,
    )


class Provider:
    """Endpoints are discovered at start and again on demand while the provider is down."""

    def __init__(
        self,
        settings: ProviderSettings,
        oidc: OidcSettings,
        auth: AuthSettings,
        http: httpx.AsyncClient,
        metrics: Metrics,
        client_auth: ClientAuth | None = None,
    ) -> None:
        self.settings = settings
        self.id = settings.id
        self.redirect_url = oidc.redirect_url_of(settings)
        self.display_name = settings.display_name or urlsplit(settings.issuer).hostname or self.id
        self.keys = IssuerKeys(
            IssuerSettings(issuer=settings.issuer, audience=[settings.client_id],
                           algorithms=settings.algorithms),
            auth, http, metrics)
        self.rules = IdTokenRules(issuer=settings.issuer, client_id=settings.client_id,
                                  algorithms=tuple(settings.algorithms),
                                  leeway_seconds=auth.leeway_seconds)
        self._http = ControlPlane(http, deadline_seconds=oidc.http_timeout_seconds,
                                  max_bytes=oidc.http_max_bytes)
        self._client_auth = client_auth or ClientAuth(
            client_id=settings.client_id, method=settings.token_auth_method,
            issuer=settings.issuer, key_name=f"oidc provider {settings.id!r}",
            secret=settings.client_secret, private_key_jwt=settings.private_key_jwt)
        self._endpoints: Endpoints | None = None
        self._discovering: asyncio.Task[Endpoints | None] | None = None
        self._last_attempt = float("-inf")
        self.last_error: str | None = "not discovered yet"
        self._mismatch: str | None = None  # what to tell a browser when the issuer is misnamed

    @property
    def ready(self) -> bool:
        return self._endpoints is not None and self.keys.ready

    async def start(self) -> None:
        """Begin discovery and the key fetch; return at once (never waits on the provider)."""
        self._begin_discovery()
        await self.keys.start()

    async def endpoints(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        if time.monotonic() - self._last_attempt >= _RETRY_SECONDS or self._discovering:
            await self._discover_once()
        if self._endpoints is None:
            if self._mismatch is not None:
                raise ProviderUnavailable(f"the sign-in provider {self.display_name} is set up "
                                          f"wrongly: {self._mismatch}", code="provider_unavailable")
            raise ProviderUnavailable(f"the sign-in provider {self.display_name} is not reachable",
                                      code="provider_unavailable")
        return self._endpoints

    async def _discover_once(self) -> Endpoints | None:
        return await asyncio.shield(self._begin_discovery())

    def _begin_discovery(self) -> asyncio.Task[Endpoints | None]:
        if self._discovering is None:
            self._last_attempt = time.monotonic()
            self._discovering = asyncio.create_task(self._discover())
            self._discovering.add_done_callback(lambda _: setattr(self, "_discovering", None))
        return self._discovering

    async def aclose(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
        await self.keys.aclose()

    async def _discover(self) -> Endpoints | None:
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = (await self._http.get(url)).raise_for_status()
            self._endpoints = parse_discovery(response.json(), self.settings.issuer)
        except IssuerMismatch as exc:
            fix = (f"set {self._issuer_key} to {exc.found!r} if that is this provider"
                   if exc.found is not None else "is this the provider's issuer URL?")
            self._mismatch = f"{exc}: {fix}"
            self.last_error = f"discovery at {url}: {self._mismatch}"
            log.warning("oidc discovery failed", extra={"provider": self.id, "error": self.last_error})
            return None
        except (FetchError, ValueError) as exc:
            self.last_error = f"discovery: {type(exc).__name__}: {exc}"[:300]
            log.warning("oidc discovery failed", extra={"provider": self.id, "error": self.last_error})
            return None
        self.last_error = self._mismatch = None
        log.info("oidc provider discovered", extra={"provider": self.id})
        return self._endpoints

    @property
    def _issuer_key(self) -> str:
        # The short form (one provider under `oidc`) gets the id "default".
        return "oidc.issuer" if self.id == "default" else f"the issuer of oidc provider {self.id!r}"

    # -- protocol calls ------------------------------------------------------------------
    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoints = await self.endpoints()
        url: str = prepare_grant_uri(
            endpoints.authorization, client_id=self.settings.client_id, response_type="code",
            redirect_uri=self.redirect_url, scope=" ".join(self.settings.scopes), state=state,
            nonce=nonce, code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256")
        extra = self.settings.extra_auth_params  # never the protocol's own: settings/oidc.py
        return url + "&" + urlencode(extra) if extra else url

    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        body = prepare_token_request("authorization_code", code=code, redirect_uri=self.redirect_url,
                                     code_verifier=code_verifier)
        return await self._token_call("authorization_code", body)

    async def refresh(self, refresh_token: str) -> TokenSet:
        body = prepare_token_request("refresh_token", refresh_token=refresh_token)
        return await self._token_call("refresh_token", body)

    async def _token_call(self, grant: str, body: str) -> TokenSet:
        endpoints = await self.endpoints()
        auth = await self._client_auth.parts(endpoints.token)
        headers = {"content-type": "application/x-www-form-urlencoded",
                   "accept": "application/json", **auth.headers}
        body = f"{body}&{urlencode(auth.form)}" if auth.form else body
        try:
            response = await self._http.call("POST", endpoints.token, headers=headers, content=body)
            token = response.json()
        except FetchError as exc:
            log.warning("token endpoint failed", extra={"provider": self.id, "grant": grant,
                                                        "error": type(exc).__name__})
            raise ProviderUnavailable("the provider's token endpoint could not be used",
                                      code="token_endpoint_unavailable") from exc
        if not isinstance(token, dict):
            raise ProviderUnavailable("the provider's token answer is not a JSON object",
                                      code="token_response_invalid")
        if "error" in token or response.status != 200:
            # invalid_grant and friends: the provider refused (a replayed code, a used refresh
            # token). The code goes to the page and the log; the description nowhere.
            error = token.get("error")
            error = error if error in TOKEN_ERRORS else "other"
            log.warning("token endpoint refused", extra={"provider": self.id, "grant": grant,
                                                         "error": error})
            raise LoginFailed(f"the provider refused the {grant.replace('_', ' ')} ({error})",
                              code=f"token_{error}")
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderUnavailable("the provider returned no access token",
                                      code="token_response_invalid")
        expires_in = token.get("expires_in")
        # Infinity, NaN or more digits than a float holds: unusable, as if absent (int() of
        # them raised, a 500 at the callback).
        expires_at = (int(time.time()) + int(expires_in) if is_finite_number(expires_in) else None)
        refresh = token.get("refresh_token")
        id_token = token.get("id_token")
        return TokenSet(
            access_token=access_token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            access_expires_at=expires_at,
        )

    async def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The userinfo claims, or None when the provider has no userinfo endpoint."""
        endpoints = await self.endpoints()
        if endpoints.userinfo is None:
            return None
        try:
            response = await self._http.get(
                endpoints.userinfo, headers={"authorization": f"Bearer {access_token}"})
            claims = response.raise_for_status().json()
        except FetchError as exc:
            raise ProviderUnavailable("the provider's userinfo endpoint could not be used",
                                      code="userinfo_unavailable") from exc
        if not isinstance(claims, dict):
            raise ProviderUnavailable("the provider's userinfo answer is not a JSON object",
                                      code="userinfo_unavailable")
        return claims

    async def end_session_url(self, id_token: str | None, post_logout_redirect_url: str,
                              state: str | None = None) -> str | None:
        """RP-Initiated Logout 1.0 §2, when the provider offers it and it is enabled; ``state``
        comes back to the post-logout redirect URL (§3)."""
        if not self.settings.end_session:
            return None
        try:
            endpoints = await self.endpoints()
        except ProviderUnavailable:
            return None  # signed out here; the provider's session is its own
        if endpoints.end_session is None:
            return None
        params = {"client_id": self.settings.client_id,
                  "post_logout_redirect_uri": post_logout_redirect_url}
        if id_token:
            params["id_token_hint"] = id_token
        if state:
            params["state"] = state
        separator = "&" if "?" in endpoints.end_session else "?"
        return endpoints.end_session + separator + urlencode(params)
