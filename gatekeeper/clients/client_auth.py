"""OAuth client authentication at a provider's back channel, for every call gatekeeper makes
as a client: introspection (RFC 7662 §2.1: any client authentication), the login's token calls
(code exchange, refresh) and token exchange (RFC 8693). One ``ClientAuth`` per client; for each
call ``await client.parts(endpoint)`` says what to add to the request's headers and form:

    client_secret_basic  Authorization: Basic, each part form-encoded first (RFC 6749 §2.3.1)
    client_secret_post   client_id and client_secret in the form (RFC 6749 §2.3.1)
    none                 client_id in the form: a public client, login only (RFC 6749 §2.1)
    private_key_jwt      client_assertion_type and a fresh client_assertion JWT (RFC 7523 §2.2,
                         OIDC Core §9): iss = sub = client_id, aud = the issuer (RFC 7523bis,
                         OIDC Core after the 2025 audience-injection errata; Keycloak 26 accepts
                         nothing else) or the endpoint called (Okta), a fresh ``jti`` (the
                         provider refuses a replay), ``exp`` a minute ahead, ``kid`` in the header

The key is a PEM file (a Kubernetes Secret mount), read and checked when the client is built —
a bad one is a ``ConfigError`` naming the key and the reason, never the key's bytes — and
checked again for a change every ``key_check_seconds`` when a call is made (a digest of a few
hundred bytes, off the event loop): a good new key signs from then on, a bad one is logged
once and the old key keeps signing, as with the assertion keys (assertion/reload.py).
Secrets and keys are kept out of every ``repr``, log line and error message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import jwt
from pydantic import SecretStr

from gatekeeper.errors import ConfigError
from gatekeeper.pemkeys import MAX_KEY_FILE_BYTES, PrivateKey, private_key, public_jwk, read_pem
from gatekeeper.settings import Settings
from gatekeeper.settings.client_auth import ClientCredentials, PrivateKeyJwtSettings
from gatekeeper.types import Check

__all__ = ["ASSERTION_TYPE", "AuthParts", "ClientAuth", "ClientKey", "Clients", "build_clients",
           "client_key_problems", "key_readiness", "load_client_key"]

log = logging.getLogger("gatekeeper.client_auth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
Method = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


@dataclass(frozen=True, slots=True)
class AuthParts:
    """What one call adds to its request; the values are credentials, kept out of ``repr``."""

    headers: dict[str, str] = field(repr=False)
    form: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClientKey:
    kid: str
    private: PrivateKey = field(repr=False)
    digest: bytes = field(repr=False)  # SHA-256 of the file as read: a change is a new key


def load_client_key(settings: PrivateKeyJwtSettings, key: str) -> ClientKey:
    """The key of ``settings`` (``key``: its config key, e.g. ``oidc.private_key_jwt``), or
    ``ConfigError`` naming the file and the reason."""
    try:
        data = read_pem(settings.key_file)
        private = private_key(data, settings.algorithm, f"{key}.algorithm")
    except ValueError as exc:
        raise ConfigError([f"{key}.key_file: {settings.key_file}: {exc}"]) from None
    kid = settings.kid or public_jwk(private.public_key(), settings.algorithm)["kid"]
    return ClientKey(kid, private, hashlib.sha256(data).digest())


def _digest(settings: PrivateKeyJwtSettings) -> bytes | None:
    try:
        with settings.key_file.open("rb") as file:
            return hashlib.sha256(file.read(MAX_KEY_FILE_BYTES + 1)).digest()
    except OSError:
        return None


class ClientAuth:
    """One client's authentication at one provider (``issuer``: the ``aud`` of its assertions)."""

    def __init__(self, *, client_id: str, method: Method, issuer: str, key_name: str,
                 secret: SecretStr | None = None, private_key_jwt: PrivateKeyJwtSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if method in ("client_secret_basic", "client_secret_post") and secret is None:
            raise ConfigError([f"{key_name}.client_secret: required with {method}"])
        self.client_id = client_id
        self.method: Method = method
        self._secret = secret
        self._issuer = issuer
        self._key_name = f"{key_name}.private_key_jwt"
        self._settings = private_key_jwt
        self._clock = clock
        self._key: ClientKey | None = None
        if method == "private_key_jwt":
            if private_key_jwt is None:
                raise ConfigError([f"{self._key_name}: required with private_key_jwt"])
            self._key = load_client_key(private_key_jwt, self._key_name)
        self._next_check = clock() + (private_key_jwt.key_check_seconds if private_key_jwt else 0)
        self.last_error: str | None = None  # the last refused key reload, for logs and checks

    def __repr__(self) -> str:
        kid = f", kid={self._key.kid!r}" if self._key is not None else ""
        return f"ClientAuth(client_id={self.client_id!r}, method={self.method!r}{kid})"

    @classmethod
    def of(cls, credentials: ClientCredentials, *, issuer: str, key_name: str) -> ClientAuth:
        """From a ``ClientCredentials`` section (``key_name``: where it is in the config)."""
        return cls(client_id=credentials.client_id, method=credentials.auth_method, issuer=issuer,
                   key_name=key_name, secret=credentials.client_secret,
                   private_key_jwt=credentials.private_key_jwt)

    @property
    def kid(self) -> str | None:
        return None if self._key is None else self._key.kid

    async def parts(self, endpoint: str) -> AuthParts:
        """What to add to one call to ``endpoint`` (the URL it POSTs to)."""
        if self._key is not None:
            await self._check_key()
        return self.parts_now(endpoint)

    def parts_now(self, endpoint: str) -> AuthParts:
        """``parts`` without the key file's check for a change (no I/O)."""
        if self.method == "client_secret_basic":
            secret = self._secret.get_secret_value() if self._secret is not None else ""
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            return AuthParts({"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}, {})
        if self.method == "client_secret_post":
            secret = self._secret.get_secret_value() if self._secret is not None else ""
            return AuthParts({}, {"client_id": self.client_id, "client_secret": secret})
        if self.method == "none":
            return AuthParts({}, {"client_id": self.client_id})
        return AuthParts({}, {"client_id": self.client_id, "client_assertion_type": ASSERTION_TYPE,
                              "client_assertion": self.assertion(endpoint)})

    def assertion(self, endpoint: str) -> str:
        """A fresh client assertion (RFC 7523 §3) for one call to ``endpoint``."""
        settings, key = self._settings, self._key
        if settings is None or key is None:
            raise RuntimeError(f"{self!r} does not sign")  # a bug: method is not private_key_jwt
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id,
                  # One string, never a list (OIDC Core §9 errata: a list invited audience
                  # injection, and strict providers refuse it).
                  "aud": self._issuer if settings.audience == "issuer" else endpoint,
                  "jti": secrets.token_urlsafe(24),  # RFC 7523 §3 item 7: the provider's replay check
                  "iat": now, "exp": now + settings.lifetime_seconds}
        return jwt.encode(claims, key.private, algorithm=settings.algorithm,
                          headers={"kid": key.kid})

    async def _check_key(self) -> None:
        settings = self._settings
        if settings is None or settings.key_check_seconds <= 0 or self._clock() < self._next_check:
            return
        self._next_check = self._clock() + settings.key_check_seconds
        digest = await asyncio.to_thread(_digest, settings)
        if self._key is None or digest == self._key.digest:
            return
        try:
            key = await asyncio.to_thread(load_client_key, settings, self._key_name)
        except ConfigError as exc:
            error = "; ".join(exc.problems)
            if error != self.last_error:  # once per new problem, not every check
                log.error("client key not reloaded: the old key keeps signing",
                          extra={"client_id": self.client_id, "error": error})
            self.last_error = error
            return
        self._key, self.last_error = key, None
        log.info("client key reloaded", extra={"client_id": self.client_id, "kid": key.kid})


def key_readiness(clients: Sequence[ClientAuth]) -> Callable[[], Awaitable[Check]]:
    """The ``client_keys`` check of /readyz: ready while each key signs (a start without one is
    refused); a refused reload is named, the old key still signing."""
    signing = [client for client in clients if client.kid is not None]

    async def check() -> Check:
        parts = []
        for client in signing:
            part = f"{client.client_id}: signing with {client.kid}"
            if client.last_error is not None:
                part += f"; last reload refused: {client.last_error}"
            parts.append(part)
        return Check(True, "; ".join(parts))

    return check


@dataclass(frozen=True, slots=True)
class Clients:
    """Every client of a config's back channels, each built once at start."""

    introspection: dict[str, ClientAuth]  # by issuer
    login: dict[str, ClientAuth]  # by provider id
    exchange: dict[str, ClientAuth] = field(default_factory=dict)  # token exchange, by issuer

    @property
    def all(self) -> list[ClientAuth]:
        return [*self.introspection.values(), *self.login.values(), *self.exchange.values()]


def build_clients(settings: Settings) -> Clients:
    """The clients of ``settings``, their keys read and checked: ``ConfigError`` with one line
    per key that cannot sign, named by its config key (``gatekeeper check``, ``run``, start)."""
    problems: list[str] = []
    introspection: dict[str, ClientAuth] = {}
    login: dict[str, ClientAuth] = {}
    exchange: dict[str, ClientAuth] = {}
    for index, issuer in enumerate(settings.auth.issuers):
        for section, clients in (("introspection", introspection), ("token_exchange", exchange)):
            credentials = getattr(issuer, section)
            if credentials is None:
                continue
            try:
                clients[issuer.issuer] = ClientAuth.of(
                    credentials, issuer=issuer.issuer, key_name=f"auth.issuers.{index}.{section}")
            except ConfigError as exc:
                problems.extend(exc.problems)
    if settings.oidc is not None:
        for index, provider in enumerate(settings.oidc.providers):
            try:
                login[provider.id] = ClientAuth(
                    client_id=provider.client_id, method=provider.token_auth_method,
                    issuer=provider.issuer, key_name=settings.oidc.provider_key(index),
                    secret=provider.client_secret, private_key_jwt=provider.private_key_jwt)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Clients(introspection, login, exchange)


def client_key_problems(settings: Settings) -> list[str]:
    """Every ``private_key_jwt`` key of ``settings`` that cannot sign, one line each (``gatekeeper
    check`` and ``run`` report them before serving, as the assertion keys)."""
    try:
        build_clients(settings)
    except ConfigError as exc:
        return exc.problems
    return []
