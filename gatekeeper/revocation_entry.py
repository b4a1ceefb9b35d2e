"""One revocation: what it names (a token id ``jti`` or a subject ``sub``), how Redis stores it
(sorted-set member ``<kind>:<value>``, score = expiry), and how ``POST /revoke`` asks for one.
The list that holds, shares and checks revocations is gatekeeper/revocation.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from gatekeeper.errors import BadRequest
from gatekeeper.subjects import SubjectClash, SubjectNamespaces

Kind = Literal["jti", "sub"]
KINDS: tuple[Kind, ...] = ("jti", "sub")
MAX_VALUE_CHARS = 1024  # a namespaced subject: an issuer URL, '#', the sub
MAX_AHEAD_SECONDS = 366 * 86400  # a revocation outlives any sane token or session by far


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: Kind
    value: str
    expires_at: float  # epoch seconds

    @property
    def member(self) -> str:
        return f"{self.kind}:{self.value}"


def valid_value(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_VALUE_CHARS and value.isprintable()


def parse_request(body: bytes, now: float, namespaces: SubjectNamespaces | None = None) -> Revocation:
    """The JSON body of ``POST /revoke``: ``{"jti" | "sub": "...", "expires_at": <epoch s>}``,
    and with ``sub`` optionally ``"iss"``: a configured issuer whose prefix ``sub`` then gets."""
    try:
        data = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    if set(data) - {"jti", "sub", "iss", "expires_at"}:
        raise BadRequest("accepted fields: jti, or sub (and optionally iss), and expires_at")
    kinds = [kind for kind in KINDS if kind in data]
    if len(kinds) != 1:
        raise BadRequest("give exactly one of jti or sub")
    kind = kinds[0]
    value = data[kind]
    if not valid_value(value):
        raise BadRequest(f"{kind} must be a string of 1 to {MAX_VALUE_CHARS} printable characters")
    if "iss" in data:
        value = _namespaced(kind, value, data["iss"], namespaces or SubjectNamespaces())
    elif kind == "sub" and namespaces is not None and not namespaces.holds(value):
        raise BadRequest("this subject is in no configured issuer's name space (it would revoke "
                         "nobody): give the namespaced subject, or sub with iss")
    expires_at = data.get("expires_at")
    try:
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise ValueError
        expires = float(expires_at)  # OverflowError for a huge integer
        if not math.isfinite(expires):
            raise ValueError
    except (ValueError, OverflowError):
        raise BadRequest("expires_at must be a number: epoch seconds") from None
    if expires <= now:
        raise BadRequest("expires_at must be in the future")
    if expires > now + MAX_AHEAD_SECONDS:
        raise BadRequest(f"expires_at must be at most {MAX_AHEAD_SECONDS // 86400} days ahead")
    return Revocation(kind, value, expires)


def _namespaced(kind: Kind, sub: str, issuer: object, namespaces: SubjectNamespaces) -> str:
    if kind != "sub":
        raise BadRequest("iss goes with sub: a jti is revoked as it is")
    if not isinstance(issuer, str) or not namespaces.knows(issuer):
        raise BadRequest("iss must be a configured issuer, exactly as configured")
    try:
        value = namespaces.subject(issuer, sub)
    except SubjectClash:
        raise BadRequest("this sub reads as a subject of another issuer") from None
    if not valid_value(value):
        raise BadRequest(f"the namespaced subject is longer than {MAX_VALUE_CHARS} characters")
    return value


def parse_member(member: bytes | str) -> tuple[Kind, str] | None:
    """A stored member back to (kind, value); None for one this module would not write."""
    try:
        text = member.decode() if isinstance(member, bytes) else member
    except UnicodeDecodeError:
        return None
    kind, _, value = text.partition(":")
    for known in KINDS:
        if kind == known and valid_value(value):
            return known, value
    return None
