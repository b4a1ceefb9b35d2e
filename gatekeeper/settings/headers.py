"""The header section: what shapes the headers the app receives, gathered from the top-level keys,
and the names those headers may have.

The keys stay where users write them (``headers``, ``pass_access_token``, …: the documented
interface); ``Settings.header_section()`` hands ``mutate.HeaderPolicy`` just these values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gatekeeper.headernames import NEVER_FORWARDED, fold, is_forwarding, is_override


@dataclass(frozen=True, slots=True)
class HeaderSettings:
    headers: Mapping[str, str]  # identity header → claim path
    pass_access_token: bool
    pass_authorization_header: bool
    trusted_proxies: tuple[str, ...]  # IPs or CIDRs, validated by Settings
    session_cookie: str | None  # gatekeeper's own cookie, stripped; None without browser login
    assertion_header: str | None = None  # the signed assertion's header (``assertion.header``)
    # A front proxy's forwarded client certificate (``auth.client_certificate_header``): read by
    # authn/certbound.py, never passed on to the app.
    certificate_header: str | None = None
    # The headers exchanged tokens go to the app in (``token_exchange[].header``): ours, so
    # every client copy goes on every route, exchanged there or not.
    exchange_headers: tuple[str, ...] = ()
    # The cookies a bearer token is read from (``auth.token_sources`` ``cookie:NAME``): the
    # caller's token as sent, so they go with Authorization when it is not passed on.
    token_cookies: tuple[str, ...] = ()
    # ``tracing.continue_incoming: false``: no caller chooses the app's trace, in any format.
    strip_foreign_traces: bool = False


DEFAULT_HEADERS = {
    "X-Auth-Request-User": "sub",
    "X-Auth-Request-Email": "email",
    "X-Auth-Request-Groups": "roles",
    "X-Auth-Request-Issuer": "iss",  # the verifying issuer: X-Auth-Request-User is per issuer
}
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_ACCESS_TOKEN_HEADER = b"x-auth-request-access-token"
_RESERVED_HEADERS = frozenset({b"authorization", b"cookie", b"x-request-id", _ACCESS_TOKEN_HEADER})


def strips_or_sets(folded: bytes, *, but_access_token: bool = False) -> bool:
    """A name gatekeeper strips for another reason or sets itself: framing, a hop-by-hop
    instruction, a path or method override, a claim about the client's address, or one of its
    own (folded, headernames.fold). ``but_access_token``: X-Auth-Request-Access-Token is not
    counted as its own (an exchanged token may take its place)."""
    reserved = _RESERVED_HEADERS - {_ACCESS_TOKEN_HEADER} if but_access_token else _RESERVED_HEADERS
    return (folded in NEVER_FORWARDED or is_override(folded) or is_forwarding(folded)
            or folded in reserved)


def check_identity_headers(value: dict[str, str]) -> dict[str, str]:
    """``headers``: valid names, none that gatekeeper strips or sets, no two that fold alike."""
    for name in value:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name")
        # A claim value must never become framing, a hop-by-hop instruction, a path or
        # method override, a claim about the client's address, or a header gatekeeper reads
        # or sets itself. (Other auth proxies' names such as X-Forwarded-User or Remote-User
        # are fine: every client copy of them goes.)
        if strips_or_sets(fold(name.encode("ascii"))):
            raise ValueError(f"{name!r} is a header gatekeeper strips or sets itself")
    folded_names = [fold(name.encode("ascii")) for name in value]
    if len(folded_names) != len(set(folded_names)):
        raise ValueError("two header names fold to the same name (case and every character "
                         "but letters and digits are alike)")
    return value


def check_assertion_header(name: str, identity: Iterable[str]) -> None:
    """``assertion.header``: as for ``headers``, never a name gatekeeper strips for another
    reason or sets itself, nor one an identity header has already (one of the two would be
    dropped)."""
    folded = fold(name.encode("ascii"))
    if strips_or_sets(folded):
        raise ValueError(f"header {name!r} is a header gatekeeper strips or sets itself")
    if any(fold(other.encode("ascii")) == folded for other in identity):
        raise ValueError(f"header {name!r} is also an identity header in `headers` (case and "
                         "every character but letters and digits are alike)")


def check_exchange_headers(headers: Iterable[str], others: Mapping[bytes, str]) -> None:
    """``token_exchange[].header``: as for ``headers``, never a name gatekeeper strips for
    another reason or sets itself (but the access token's, which an exchanged token may
    replace), nor one of ``others`` (folded name → the key that has it already)."""
    for i, header in enumerate(headers):
        folded = fold(header.encode("ascii"))
        if strips_or_sets(folded, but_access_token=True):
            raise ValueError(f"token_exchange.{i}.header: {header!r} is a header "
                             "gatekeeper strips or sets itself")
        if folded in others:
            raise ValueError(f"token_exchange.{i}.header: {header!r} is also "
                             f"{others[folded]} (case and every character but letters and "
                             "digits are alike)")
