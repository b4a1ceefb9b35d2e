"""The header section: what shapes the headers the app receives, gathered from the top-level keys.

The keys stay where users write them (``headers``, ``pass_access_token``, …: the documented
interface); ``Settings.header_section()`` hands ``mutate.HeaderPolicy`` just these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
