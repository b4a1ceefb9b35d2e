"""The fuzzed components, built once with fixed keys, so a token or cookie saved in a corpus file
today still verifies tomorrow (the seed corpus under tests/fuzz/seeds/ relies on it).

Nothing here touches the network: the issuer's keys are loaded from an in-memory JWKS through
httpx's MockTransport once, and the refresh interval is long enough that no fuzzed ``kid`` ever
triggers another fetch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.cookies import CookieJar, request_cookies
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import CookieSessionStore, chunk_names
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.model import Session
from gatekeeper.settings import AuthSettings, IssuerSettings, SessionSettings
from gatekeeper.tokens.jwks import IssuerKeys

T = TypeVar("T")

ISSUER = "https://issuer.fuzz.test"
AUDIENCE = "fuzz-api"
COOKIE_TOKEN_NAME = "tok"
# Fixed private scalars: deterministic keys without a key file in the repository.
_EC_KEY = ec.derive_private_key(0x5EED_F022_0000_0000_0000_0001, ec.SECP256R1())
_ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FAR_FUTURE = 4_102_444_800  # 2100-01-01: corpus tokens never expire
SESSION_SECRET = "fuzz-session-secret-0123456789abcdefghijkl"
SESSION_NOW = 1_900_000_000.0  # the cookie store's clock: sealed sessions are young at this time


_LOOP: list[asyncio.AbstractEventLoop] = []  # the one loop of this process, while open


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on this process's loop (one loop for the whole fuzz run: a new loop per
    input would cost more than the code under test)."""
    if not _LOOP or _LOOP[0].is_closed():
        _LOOP[:] = [asyncio.new_event_loop()]
    return _LOOP[0].run_until_complete(coroutine)


def close_loop() -> None:
    """Close the loop (the tests do at the end of their module: a loop left to the garbage
    collector warns about its sockets in whichever later test it is collected)."""
    while _LOOP:
        _LOOP.pop().close()


def request(headers: list[tuple[bytes, bytes]], path: str = "/") -> RequestView:
    return RequestView({"type": "http", "method": "GET", "path": path, "headers": headers}, path)


# -- bearer tokens ------------------------------------------------------------------------------


def _jwks() -> dict[str, Any]:
    keys = []
    for kid, key, alg in (("ec-1", _EC_KEY, "ES256"), ("ed-1", _ED_KEY, "EdDSA")):
        jwk = jwt.get_algorithm_by_name(alg).to_jwk(key.public_key(), as_dict=True)
        keys.append({**jwk, "kid": kid, "use": "sig"})
    return {"keys": keys}


def mint(sub: str = "alice", *, alg: str = "ES256", roles: tuple[str, ...] = ("user",),
         **claims: Any) -> str:
    """A token the fuzz issuer signed: valid until 2100 for AUDIENCE."""
    key, kid = (_EC_KEY, "ec-1") if alg == "ES256" else (_ED_KEY, "ed-1")
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": FAR_FUTURE, "iat": 1_700_000_000,
               "roles": list(roles), **claims}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


TOKENS = (
    mint(), mint("bob", alg="EdDSA", roles=("admin", "user")), mint("carol", roles=()),
    mint("dave", alg="EdDSA", email="dave@example.com", realm_access={"roles": ["ops"]}),
)


@dataclass
class BearerSubject:
    """A BearerAuthenticator trusting one issuer (ES256 and EdDSA keys), tokens from header or
    cookie ``tok``, with the verified-token cache off so every input is verified."""

    authenticator: BearerAuthenticator
    keys: IssuerKeys
    tokens: tuple[str, ...] = TOKENS

    @property
    def signing_inputs(self) -> frozenset[str]:
        """``header.payload`` of every token the issuer signed (deterministic: the seed corpus
        holds the same ones, even where ES256 signatures differ)."""
        return frozenset(t.rpartition(".")[0] for t in self.tokens)

    @classmethod
    def build(cls) -> BearerSubject:
        issuer = IssuerSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_uri=ISSUER + "/jwks",
                                algorithms=["ES256", "EdDSA"])
        auth = AuthSettings(issuers=[issuer], token_sources=["header", f"cookie:{COOKIE_TOKEN_NAME}"],
                            token_cache_size=0, jwks_min_refresh_seconds=3600)
        body = json.dumps(_jwks()).encode()
        transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(body)))
        metrics = Metrics()
        keys = IssuerKeys(issuer, auth, httpx.AsyncClient(transport=transport), metrics)
        assert run(keys.refresh()), keys.last_error
        return cls(BearerAuthenticator(auth, {ISSUER: keys}, metrics), keys)

    def authenticate(self, headers: list[tuple[bytes, bytes]]) -> Principal | None:
        return run(self.authenticator.authenticate(request(headers)))


# -- session cookies ----------------------------------------------------------------------------


@dataclass
class CookieSubject:
    """The cookie session store with a fixed secret and clock, and every session sealed for it:
    a session that ``load`` returns must be one of ``known`` (keyed by sealed text)."""

    store: CookieSessionStore
    cipher: SessionCipher
    settings: SessionSettings
    known: dict[str, Session] = field(default_factory=dict)

    @classmethod
    def build(cls, max_chunks: int = 4) -> CookieSubject:
        settings = SessionSettings(secret=[SESSION_SECRET], cookie_secure=False, max_chunks=max_chunks)
        store = CookieSessionStore(settings, clock=lambda: SESSION_NOW, touch_seconds=60)
        return cls(store, SessionCipher.from_settings(settings), settings)

    @property
    def name(self) -> str:
        return self.settings.cookie_name

    def seal(self, session: Session) -> str:
        """The ``Cookie`` header value a browser sends back for ``session`` (its chunks in order)."""
        jar = CookieJar()
        run(self.store.save(request([]), jar, session))
        # What the browser keeps: no Max-Age (a browser-session cookie) or a positive one.
        pairs = [(c.name, c.value) for c in jar if c.max_age is None or c.max_age > 0]
        self.register(pairs[0][1].partition(".")[2] + "".join(value for _, value in pairs[1:]))
        return "; ".join(f"{name}={value}" for name, value in pairs)

    def register(self, sealed: str) -> None:
        """Accept ``sealed`` (e.g. read from a seed file) as one of ours; it must open."""
        self.known[sealed] = Session.from_json(self.cipher.open(sealed, name=self.name))

    def register_cookie_header(self, cookie_header: bytes) -> None:
        """Accept the session in a Cookie header written by ``seal`` (a seed file)."""
        jar = request_cookies([cookie_header])
        count, _, first = jar[self.name].partition(".")
        self.register(first + "".join(jar[name] for name in chunk_names(self.name, int(count))[1:]))

    def load(self, cookie_header: bytes) -> Session | None:
        return run(self.store.load(request([(b"cookie", cookie_header)]), CookieJar()))


def session(subject: str = "alice", *, padding: int = 0) -> Session:
    """A session of a login at SESSION_NOW; ``padding`` bytes of claims make it span chunks."""
    claims = {"sub": subject, "roles": ["user"], "pad": "x" * padding}
    return Session.new(subject=subject, provider="default", claims=claims, access_token="at-" + subject,
                       refresh_token=None, access_expires_at=None, now=SESSION_NOW - 5)
