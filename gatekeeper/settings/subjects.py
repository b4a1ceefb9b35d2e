"""Subject name spaces: which prefix each configured issuer's subjects get (see subjects.py).

An issuer may be configured twice — for bearer tokens (``auth.issuers``) and for browser login
(``oidc``) — and is still one identity source: one prefix per issuer URL, so a person's session
and bearer token are the same subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.subjects import ROLE_PREFIX, default_prefix, fold

SUBJECT_PREFIX_DESCRIPTION = (
    "This issuer's subjects, as the policy, the revocation list and X-Auth-Request-User see "
    "them, are this prefix + `sub`. Default: none with one issuer; `ISSUER#` with several. "
    "`\"\"` maps a trusted issuer into the plain name space.")
MAX_PREFIX_CHARS = 200


def check_prefix(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_PREFIX_CHARS or not value.isprintable():
        raise ValueError(f"at most {MAX_PREFIX_CHARS} printable characters")
    if fold(value).startswith(ROLE_PREFIX):
        raise ValueError(f"must not start with {ROLE_PREFIX!r}: that is the roles' name space")
    return value


def check_issuer_url(value: str) -> str:
    # OpenID Connect Discovery 1.0 §3: an issuer has no query or fragment. The default subject
    # prefix ends in '#', so an issuer holding one could make another issuer's subjects.
    if "#" in value:
        raise ValueError("an issuer URL has no fragment ('#')")
    return value


@dataclass(frozen=True, slots=True)
class IssuerEntry:
    key: str  # "auth.issuers.0", "oidc.providers.1", "oidc" (one provider's keys under oidc)
    issuer: str
    prefix: str | None  # as configured; None = the default


def resolve_prefixes(entries: Sequence[IssuerEntry]) -> dict[str, str]:
    """issuer → prefix; raises ValueError naming the keys of a conflict."""
    explicit: dict[str, IssuerEntry] = {}
    for entry in entries:
        if entry.prefix is None:
            continue
        first = explicit.setdefault(entry.issuer, entry)
        if first.prefix != entry.prefix:
            raise ValueError(
                f"{first.key}.subject_prefix and {entry.key}.subject_prefix name the same issuer "
                "with different prefixes: one issuer is one identity (set the same, or one of them)")
    issuers = list(dict.fromkeys(entry.issuer for entry in entries))
    prefixes: dict[str, str] = {}
    for issuer in issuers:
        chosen = explicit.get(issuer)
        if chosen is not None:
            prefixes[issuer] = chosen.prefix or ""
        else:
            prefixes[issuer] = "" if len(issuers) == 1 else default_prefix(issuer)
    for a in issuers:
        for b in issuers:
            pa, pb = prefixes[a], prefixes[b]
            if a == b or not pa or not fold(pb).startswith(fold(pa)):
                continue
            if pa == pb and a in explicit and b in explicit:
                continue  # shared on purpose: both set the same prefix
            where = (explicit.get(b) or explicit.get(a))
            key = f"{where.key}.subject_prefix" if where else "subject_prefix"
            raise ValueError(f"{key}: the subjects of {a} ({pa!r}) and {b} ({pb!r}) could overlap; "
                             "no prefix may begin another")
    return prefixes
