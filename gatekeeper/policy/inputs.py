"""What feeds each field of the model's request (``r = …``), and the request's domain.

A field is fed by one of gatekeeper's sources: ``subject`` (the caller), ``path`` (the
canonical path), ``method``, ``domain`` (the tenant, from ``policy.domain``), ``claims`` (the
token's claims) or ``client`` (the caller's address, ``peers.forwarded_client``). Which feeds
which: ``policy.request`` when set (by position); else by the fields' names (sub, obj, act,
dom, claims, client); else, for the shapes Casbin's examples use, by position — three fields are
subject, path, method (``r = user, thing, action``), four are subject, domain, path, method
(``r = sub, tenant, obj, act``). A field that none of these feeds is a load error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.peers import HostUnclear, IsTrusted, forwarded_client, forwarded_host
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import DomainSource

SOURCES = ("subject", "path", "method", "domain", "claims", "client")
BY_NAME = {"sub": "subject", "obj": "path", "act": "method", "dom": "domain", "claims": "claims",
           "client": "client"}
BY_POSITION = {3: ("subject", "path", "method"), 4: ("subject", "domain", "path", "method")}
NO_DOMAIN = "no_domain"


class RequestShapeError(ValueError):
    """The model's request fields cannot all be fed."""


def request_sources(fields: Sequence[str], configured: Sequence[str] | None) -> tuple[str, ...]:
    """The source of each request field, in order (``fields`` without their ``r_`` prefix)."""
    if configured is not None:
        if len(configured) != len(fields):
            raise RequestShapeError(
                f"policy.request names {len(configured)} source(s) for the {len(fields)} "
                f"request field(s) {', '.join(fields)}")
        return tuple(configured)
    if all(name in BY_NAME for name in fields):
        return tuple(BY_NAME[name] for name in fields)
    unknown = [name for name in fields if name not in BY_NAME]
    by_position = BY_POSITION.get(len(fields))
    if by_position is None:
        raise RequestShapeError(
            f"the request field(s) {', '.join(unknown)} cannot be fed: name them "
            f"{', '.join(BY_NAME)}, or set policy.request (one of {', '.join(SOURCES)} per field)")
    clash = [f"{name} (position {index + 1} is the {source})"
             for index, (name, source) in enumerate(zip(fields, by_position, strict=True))
             if name in BY_NAME and BY_NAME[name] != source]
    if clash:
        raise RequestShapeError(
            f"the request field(s) {', '.join(unknown)} are fed by position "
            f"({', '.join(by_position)}), but {', '.join(clash)}: set policy.request")
    return by_position


class NoDomain(LookupError):
    """The request carries no domain gatekeeper may believe; ``code`` is the deny reason."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def read_domain(source: DomainSource, claims: Mapping[str, Any], path: str,
                request: RequestView | None, is_trusted: IsTrusted) -> str:
    """The request's domain from its configured source; NoDomain (a deny) when it has none."""
    if source.claim is not None:
        value = _claim(claims, source.claim)
        if not isinstance(value, str) or not value:
            raise NoDomain(NO_DOMAIN)  # absent, empty, a number or a list: never a tenant
        return value
    if source.path_segment is not None:
        # The canonical path (gatekeeper/paths.py): what the app receives, dot segments gone.
        segments = path.split("/")
        if source.path_segment >= len(segments) or not segments[source.path_segment]:
            raise NoDomain(NO_DOMAIN)
        return segments[source.path_segment]
    if request is None:
        raise NoDomain(NO_DOMAIN)
    try:
        return forwarded_host(request, is_trusted)
    except HostUnclear as exc:
        raise NoDomain(exc.code) from None


def read_client(request: RequestView | None, is_trusted: IsTrusted) -> str:
    return forwarded_client(request, is_trusted) if request is not None else ""
