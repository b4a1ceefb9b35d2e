"""The pipeline's token-exchange stage: which routes' apps get a token of their own, and for whom.

After the request is allowed (and its rate limit spent), a route with a ``token_exchange`` rule
gets the caller's token exchanged at the caller's issuer for one scoped to the rule's audience;
it reaches the app in the rule's header, in place of any identity header of that name (with
``pass_access_token`` and the default header, the app gets the exchanged token, not the caller's).
Every client copy of that header is stripped on every route by mutate.HeaderPolicy.

    anonymous (a public path)                 no exchange, no header: nothing to exchange
    a caller with a token of an issuer that   the exchanged token, or the provider's refusal
      has a ``token_exchange`` client           (401 / 403) or 503 when it cannot be asked
    any other caller (a client certificate,   403 ``token_exchange_not_possible``: the app
      an issuer without that client)            expects a token this caller cannot bring

A browser session whose token the provider will not exchange (``invalid_grant``) gets 403, not
401: a 401 sends a browser to log in, and the provider's single sign-on would hand it a token
refused the same way, round and round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from gatekeeper.errors import Forbidden, InvalidToken
from gatekeeper.headernames import fold
from gatekeeper.paths import PathPatterns
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.token_exchange import TokenExchangeRoute
from gatekeeper.token_exchange.client import IssuerExchange, Wanted

Headers = list[tuple[bytes, bytes]]


class TokenExchanges:
    """The ``token_exchange`` rules, first match wins, and one ``IssuerExchange`` per issuer."""

    def __init__(self, routes: Sequence[TokenExchangeRoute],
                 issuers: Mapping[str, IssuerExchange]) -> None:
        self._rules = [(PathPatterns(r.paths), frozenset(r.methods), Wanted.of(r)) for r in routes]
        self._any = PathPatterns(p for r in routes for p in r.paths)
        self._issuers = dict(issuers)

    def covers(self, path: str) -> bool:
        """In memory: may a rule apply to ``path``? (Only those pay for ``exchanged``.)"""
        return path in self._any

    def wanted(self, method: str, path: str) -> Wanted | None:
        for paths, methods, wanted in self._rules:
            if path in paths and (not methods or method in methods):
                return wanted
        return None

    async def exchanged(self, principal: Principal, request: RequestView, identity: Headers) -> Headers:
        """``identity`` with the app's exchanged token added, when a rule covers ``request``;
        raises the refusal (401, 403) or ``TokenExchangeUnavailable`` (503)."""
        wanted = self.wanted(request.method, request.path)
        if wanted is None or principal.via == "anonymous":
            return identity
        token = principal.token
        client = self._issuers.get(principal.issuer)
        if token is None or client is None:
            raise Forbidden("this route's app needs a token gatekeeper can exchange only for "
                            "callers with a token of a configured issuer",
                            code="token_exchange_not_possible")
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        try:
            value = await client.exchange(token, digest, principal.expires_at, wanted)
        except InvalidToken as exc:
            if principal.via != "session":
                raise
            raise Forbidden(exc.description, code=exc.code) from exc  # no login loop
        # A new list: the mutator's is cached per principal, shared by its requests.
        name = fold(wanted.header)
        return [*(h for h in identity if fold(h[0]) != name), (wanted.header, value.encode("ascii"))]
