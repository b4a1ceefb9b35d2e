"""Gatekeeper's error tree. Each error carries a machine ``code`` and the HTTP ``status`` it maps to.

    GatekeeperError
    ├── ConfigError                 bad configuration; refused at start (never at request time)
    ├── BadRequest            400   malformed request: target, framing, duplicate Authorization
    │   └── HeadersTooLarge   431   request headers larger than ``max_header_bytes``
    ├── Unauthenticated       401   no usable credentials (RFC 6750 WWW-Authenticate)
    │   ├── InvalidToken      401   a token was presented and failed a named check
    │   │   ├── TokenRevoked  401   the token's jti or subject is on the revocation list
    │   │   └── DpopRefused   401   a DPoP proof or binding failed (RFC 9449 §7.1 challenge)
    │   │       └── SessionRevoked  a session's: it is ended, and a browser sent to sign in
    │   └── SessionInvalid    401   a session cookie was sent and cannot be used (tampered,
    │                               unknown key, bad chunks, expired, idle, ended elsewhere)
    ├── SessionTooLarge       500   a new session does not fit in ``session.max_chunks`` cookies
    ├── Forbidden             403   authenticated, but the policy says no
    ├── RateLimited           429   over a ``rate_limits`` rule; Retry-After says when to retry
    ├── KeysUnavailable       503   no signing keys for the token's issuer yet (issuer unreachable)
    ├── SessionStoreUnavailable 503 Redis (sessions) did not answer in time: never a silent logout
    ├── ReplayStoreUnavailable 503  Redis (DPoP jti replay cache) did not answer: fail closed
    ├── RevocationStale       503   the local revocation list is older than its staleness bound
    ├── RevocationStoreUnavailable 503 POST /revoke could not store and publish (Redis down)
    ├── TokenExchangeUnavailable 503 the provider gave no usable RFC 8693 answer for the app's
    │                               token (down, slow, too large, hostile); a refusal is a 401
    │                               (``invalid_grant``) or a 403 (``invalid_target``, …) instead
    ├── LoginFailed           400   a browser login cannot complete: state, provider error, a
    │                               refused ID token (its code names the failed check)
    │   ├── LoginDenied       403   the provider answered access_denied (the user cancelled)
    │   └── ProviderUnavailable 502 the OpenID Provider could not be reached or answered badly
    └── UpstreamError               the app could not be reached or answered badly
        ├── UpstreamUnavailable 502 connection refused / reset / protocol violation
        └── UpstreamTimeout     504 slower than ``upstream_timeout_seconds``

Library exceptions (PyJWT, httptools, OS errors) are translated where the library is used, with
``raise … from exc``. ``description`` is safe to show a client: it never contains the token, a
cookie or a secret; ``str(exc)`` of a library exception never reaches a client.
"""

from __future__ import annotations


class GatekeeperError(Exception):
    code = "error"
    status = 500

    def __init__(self, description: str = "", *, code: str | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description
        if code is not None:
            self.code = code


class ConfigError(GatekeeperError):
    code = "invalid_config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BadRequest(GatekeeperError):
    code = "bad_request"
    status = 400


class HeadersTooLarge(BadRequest):
    code = "headers_too_large"
    status = 431


class Unauthenticated(GatekeeperError):
    code = "unauthenticated"
    status = 401


class InvalidToken(Unauthenticated):
    code = "invalid_token"


class DpopRefused(InvalidToken):
    """RFC 9449 §7.1: answered with ``WWW-Authenticate: DPoP algs=…, error=…``. ``error`` is the
    RFC's code (invalid_token, invalid_dpop_proof, use_dpop_nonce); ``nonce`` goes out as
    ``DPoP-Nonce`` (§8)."""

    code = "invalid_dpop_proof"

    def __init__(self, description: str, *, code: str, error: str, algs: tuple[str, ...],
                 nonce: str | None = None) -> None:
        super().__init__(description, code=code)
        self.error = error
        self.algs = algs
        self.nonce = nonce


class ReplayStoreUnavailable(GatekeeperError):
    code = "replay_store_unavailable"
    status = 503


class SessionInvalid(Unauthenticated):
    code = "session_invalid"


class TokenRevoked(InvalidToken):
    code = "token_revoked"


class SessionRevoked(TokenRevoked):
    code = "session_revoked"


class SessionStoreUnavailable(GatekeeperError):
    code = "session_store_unavailable"
    status = 503


class RevocationStoreUnavailable(GatekeeperError):
    code = "revocation_store_unavailable"
    status = 503


class RevocationStale(GatekeeperError):
    code = "revocation_list_stale"
    status = 503


class SessionTooLarge(GatekeeperError):
    code = "session_too_large"
    status = 500


class Forbidden(GatekeeperError):
    code = "forbidden"
    status = 403


class RateLimited(GatekeeperError):
    code = "rate_limited"
    status = 429

    def __init__(self, *, limit: int, window_seconds: int, retry_after: int, rule: str) -> None:
        super().__init__(f"more than {limit} requests in {window_seconds} s; "
                         f"retry after {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after  # whole seconds, ≥ 1
        self.rule = rule  # "rate_limits[0]", for the access log


class KeysUnavailable(GatekeeperError):
    code = "keys_unavailable"
    status = 503


class IntrospectionUnavailable(GatekeeperError):
    """The issuer's introspection endpoint gave no usable answer (down, slow, 5xx, too large):
    that token's holder gets 503, nothing is decided or cached (RFC 7662)."""

    code = "introspection_unavailable"
    status = 503


class TokenExchangeUnavailable(GatekeeperError):
    """The issuer's token endpoint gave no usable token-exchange answer (RFC 8693 §2.2): down,
    slow, non-JSON, too large, no token or the wrong kind. Only the exchange routes get it."""

    code = "token_exchange_unavailable"
    status = 503


class LoginFailed(GatekeeperError):
    code = "login_failed"
    status = 400


class LoginDenied(LoginFailed):
    code = "access_denied"
    status = 403


class ProviderUnavailable(LoginFailed):
    code = "provider_unavailable"
    status = 502


class UpstreamError(GatekeeperError):
    code = "upstream_error"
    status = 502


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    status = 502


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
