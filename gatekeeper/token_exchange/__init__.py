"""Token exchange for the app (RFC 8693): the caller's token traded at its issuer for one scoped
to a downstream audience, handed to the app in a header of its own.

    routes.py   the pipeline stage: the ``token_exchange`` rules, which caller, which header
    client.py   one issuer's token endpoint: the request, client authentication, the cache
    answer.py   what an answer must say to be believed (§2.2.1) and what a refusal means (§2.2.2)
"""

from gatekeeper.token_exchange.client import IssuerExchange, Wanted
from gatekeeper.token_exchange.routes import TokenExchanges

__all__ = ["IssuerExchange", "TokenExchanges", "Wanted"]
