"""The session: what a browser login leaves behind for the pipeline, and its compact JSON form.

A session is created once per login (``Session.new``: a fresh random id, so an id planted before
login never becomes a logged-in session — session fixation, OWASP ASVS V3.2.1) and changed only
with ``dataclasses.replace`` (refresh, last-seen). Tokens, claims and the id never appear in
``repr``: a session that reaches a log line shows who and when, nothing that grants access.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.errors import SessionInvalid

SESSION_ID_BYTES = 16  # 128 bits from the OS CSPRNG (OWASP: at least 64 bits of entropy)
_SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{22,86}")
_FORMAT = 1  # the JSON layout; bump and migrate in from_json when fields change


@dataclass(frozen=True, slots=True)
class Session:
    id: str = field(repr=False)  # not a credential in a sealed cookie, but a Redis ticket's sibling
    subject: str
    provider: str
    claims: Mapping[str, Any] = field(repr=False, hash=False)  # for roles and identity headers
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    access_expires_at: int | None  # epoch seconds; None when the provider did not say
    created_at: int
    last_seen_at: int
    id_token: str | None = field(default=None, repr=False)  # only when RP-initiated logout needs it
    # The claims userinfo supplied (a refresh asks again instead of keeping them); None: no
    # userinfo was asked, or a session written before this was recorded.
    userinfo_claims: tuple[str, ...] | None = field(default=None, repr=False)

    @classmethod
    def new(
        cls,
        *,
        subject: str,
        provider: str,
        claims: Mapping[str, Any],
        access_token: str,
        refresh_token: str | None,
        access_expires_at: int | None,
        now: float,
        id_token: str | None = None,
        userinfo_claims: tuple[str, ...] | None = None,
    ) -> Session:
        """A session for a login that just completed: always a new id."""
        return cls(
            subject=subject, provider=provider, claims=dict(claims), access_token=access_token,
            refresh_token=refresh_token, access_expires_at=access_expires_at,
            created_at=int(now), last_seen_at=int(now),
            id=secrets.token_urlsafe(SESSION_ID_BYTES), id_token=id_token,
            userinfo_claims=userinfo_claims,
        )

    def to_json(self) -> bytes:
        """Compact JSON with short keys: every byte here is a cookie byte."""
        data: dict[str, Any] = {
            "v": _FORMAT, "id": self.id, "sub": self.subject, "p": self.provider,
            "c": dict(self.claims), "at": self.access_token, "ct": self.created_at,
            "ls": self.last_seen_at,
        }
        # Absent rather than null: shorter.
        for key, value in (("rt", self.refresh_token), ("exp", self.access_expires_at),
                           ("it", self.id_token)):
            if value is not None:
                data[key] = value
        if self.userinfo_claims is not None:
            data["u"] = list(self.userinfo_claims)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Session:
        """Parse what ``to_json`` wrote; anything else is ``SessionInvalid``."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SessionInvalid("session data is not JSON") from exc
        if not isinstance(data, dict) or data.get("v") != _FORMAT:
            raise SessionInvalid("unknown session data format")
        session = cls(
            id=_text(data, "id"), subject=_text(data, "sub"), provider=_text(data, "p"),
            claims=_claims(data), access_token=_text(data, "at"),
            refresh_token=_optional_text(data, "rt"), access_expires_at=_optional_int(data, "exp"),
            created_at=_int(data, "ct"), last_seen_at=_int(data, "ls"),
            id_token=_optional_text(data, "it"), userinfo_claims=_names(data, "u"),
        )
        if not _SESSION_ID.fullmatch(session.id):
            raise SessionInvalid("malformed session id")
        return session


# Sealed data was written by us, so these checks guard against our own bugs and format drift,
# not attackers; they still keep a wrong type from surfacing later as a TypeError.
def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise SessionInvalid(f"session field {key!r} is missing or not text")
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    return None if key not in data else _text(data, key)


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SessionInvalid(f"session field {key!r} is missing or not an integer")
    return value


def _optional_int(data: dict[str, Any], key: str) -> int | None:
    return None if key not in data else _int(data, key)


def _names(data: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SessionInvalid(f"session field {key!r} is not a list of names")
    return tuple(value)


def _claims(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("c")
    if not isinstance(value, dict):
        raise SessionInvalid("session field 'c' is missing or not an object")
    return value
