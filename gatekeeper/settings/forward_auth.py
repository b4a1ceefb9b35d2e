"""forward_auth: where the front proxy says which request it is asking about.

Exactly one source for the original URI and one for the method, chosen by the kind of proxy in
front. Reading "the first of several headers" let a client's own ``X-Forwarded-Uri`` win over the
one nginx set, since ``auth_request`` copies every client header into its subrequest.

- nginx: ``X-Original-URI`` / ``X-Original-Method``; auth_request sets nothing itself, the recipe
  in docs/forward-auth.md sets both with proxy_set_header.
- traefik, caddy: ``X-Forwarded-Uri`` / ``X-Forwarded-Method``, which ForwardAuth and Caddy's
  forward_auth always set.
- envoy: ext_authz http_service asks at path_prefix + the original path, with the original
  method: the check request's own target (after ``/oauth2/auth``) and method.
- custom: ``uri_header`` / ``method_header``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from gatekeeper.headernames import fold
from gatekeeper.settings.common import FrozenModel

ProxyKind = Literal["nginx", "traefik", "envoy", "caddy", "custom"]

# (URI header, method header) per proxy kind; None: the check request's own target / method.
PROXY_SOURCES: dict[str, tuple[str | None, str | None]] = {
    "nginx": ("X-Original-URI", "X-Original-Method"),
    "traefik": ("X-Forwarded-Uri", "X-Forwarded-Method"),
    "caddy": ("X-Forwarded-Uri", "X-Forwarded-Method"),
    "envoy": (None, None),
}

# Every header some proxy, framework or server reads as "the request is really this URI / this
# method". A forward-auth check that carries one of them with another value than the configured
# source is refused: whichever the app or a later hop believes, it is not what was decided.
URI_CARRIERS = ("X-Forwarded-Uri", "X-Original-URI", "X-Original-URL", "X-Rewrite-URL",
                "X-Forwarded-Path", "X-Original-Path", "X-Envoy-Original-Path", "X-Forwarded-URL")
METHOD_CARRIERS = ("X-Forwarded-Method", "X-Original-Method", "X-HTTP-Method-Override",
                   "X-HTTP-Method", "X-Method-Override", "X-Envoy-Original-Method")

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


class ForwardAuthSettings(FrozenModel):
    proxy: ProxyKind = Field(
        default="nginx",
        description="The proxy that asks `/oauth2/auth`; picks the one header read for the original "
        "URI and for the method (docs/forward-auth.md): nginx `X-Original-URI`/`X-Original-Method`, "
        "traefik and caddy `X-Forwarded-Uri`/`X-Forwarded-Method`, envoy the check request's own "
        "path (after `/oauth2/auth`) and method, custom `uri_header`/`method_header`.")
    uri_header: str | None = Field(
        default=None, description="With `proxy: custom`: the header carrying the original URI.")
    method_header: str | None = Field(
        default=None, description="With `proxy: custom`: the header carrying the original method.")

    @model_validator(mode="after")
    def _custom_headers(self) -> ForwardAuthSettings:
        given = [h for h in (self.uri_header, self.method_header) if h is not None]
        if self.proxy != "custom":
            if given:
                raise ValueError(f"uri_header and method_header need proxy: custom "
                                 f"(proxy: {self.proxy} has its own)")
            return self
        if self.uri_header is None or self.method_header is None:
            raise ValueError("proxy: custom needs both uri_header and method_header")
        for name in given:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name (letters, digits, '-')")
        uri_name, method_name = fold(self.uri_header.encode()), fold(self.method_header.encode())
        if uri_name == method_name:
            raise ValueError("uri_header and method_header fold to the same name")
        # A URI header that is also a known method carrier (or the reverse) would conflict with
        # itself on every check: refused here rather than a 400 on every request.
        if uri_name in {fold(n.encode()) for n in METHOD_CARRIERS}:
            raise ValueError(f"uri_header {self.uri_header!r} is a method header")
        if method_name in {fold(n.encode()) for n in URI_CARRIERS}:
            raise ValueError(f"method_header {self.method_header!r} is a URI header")
        return self

    def sources(self) -> tuple[str | None, str | None]:
        """(URI header, method header); None means the check request's own target / method."""
        if self.proxy == "custom":
            return self.uri_header, self.method_header
        return PROXY_SOURCES[self.proxy]
