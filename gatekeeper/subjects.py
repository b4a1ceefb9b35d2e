"""Who a caller is, as the policy, the revocation list and the app see it: users and roles apart,
and every issuer's users apart.

Two name spaces meet in a Casbin policy: the caller's own subject and the roles it holds. Fed as
plain strings into one space, a token whose ``sub`` is ``admin`` *is* the role ``admin``: a user
could name themself into a role. So roles — the token's roles and the built-in ``authenticated``
and ``anonymous`` — always reach the policy as ``role:<name>``, and a user subject that would
land in that space (folded as an app or a loose matcher might fold it: case, width, white space)
is refused, never matched. For policies written before the ``role:`` prefix, the plain names
they use as roles are refused as subjects too (``legacy_role_names``).

Two issuers can both have an ``alice``: a subject is ``<prefix><sub>``, the prefix being
the issuer's. With one issuer the prefix is empty; with several it defaults to ``<issuer>#`` —
issuer URLs are distinct and hold no ``#`` (OpenID Connect Discovery §4.3, checked in settings),
so two of them never make the same subject — unless the config maps an issuer explicitly
(``subject_prefix``, ``""`` = the plain name space, for an issuer trusted as much as the main one).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

ROLE_PREFIX = "role:"
AUTHENTICATED_ROLE = ROLE_PREFIX + "authenticated"  # every logged-in caller holds it
ANONYMOUS_ROLE = ROLE_PREFIX + "anonymous"  # every caller holds it; anonymous callers only it
BUILTIN_ROLES = ("authenticated", "anonymous")
NAMES_A_ROLE = "subject_names_a_role"  # the deny reason


def as_role(name: str) -> str:
    """A token role as the policy sees it."""
    return ROLE_PREFIX + name


def fold(name: str) -> str:
    """``name`` as a lenient reader might compare it: compatibility forms (full-width letters),
    any case, white space and invisible characters gone. Only for refusing, never for matching."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())


def names_a_role(subject: str, role_names: frozenset[str]) -> bool:
    """True when a user ``subject`` could be read as a role: it lies in the role name space, or it
    is (folded) a plain name the policy uses as a role."""
    folded = fold(subject)
    return folded.startswith(ROLE_PREFIX) or folded in role_names


def legacy_role_names(p_subjects: Iterable[str], g_targets: Iterable[str]) -> frozenset[str]:
    """The plain (unprefixed) names a policy uses as roles, folded: what no user may be called.

    Always ``authenticated`` and ``anonymous``, every ``role:NAME``'s plain NAME (an app or a
    matcher that drops the prefix must not meet a user of that name either), and every plain
    name a ``g`` line grants (it has members, so it is a role). In a policy that names no
    ``role:`` at all — written before the prefix existed — every plain rule subject too: then a
    token role reached them, and the file cannot say which were meant as users (fail closed;
    ``gatekeeper policy check`` says how to migrate). A policy that uses ``role:`` says what it
    means: its plain rule subjects are users.
    """
    subjects, targets = set(p_subjects), set(g_targets)
    prefixed = any(name.startswith(ROLE_PREFIX) for name in subjects | targets)
    names = {t.removeprefix(ROLE_PREFIX) for t in targets} | set(BUILTIN_ROLES)
    names |= {s.removeprefix(ROLE_PREFIX) for s in subjects if s.startswith(ROLE_PREFIX)}
    if not prefixed:
        names |= {s for s in subjects if not s.startswith(ROLE_PREFIX)}
    return frozenset(fold(name) for name in names)


class SubjectClash(ValueError):
    """A subject in one issuer's name space reads as a subject of another issuer's."""


def default_prefix(issuer: str) -> str:
    return issuer + "#"


class SubjectNamespaces:
    """issuer → the prefix of its subjects (from ``Settings.subject_prefixes``)."""

    def __init__(self, prefixes: Mapping[str, str] | None = None) -> None:
        self._prefixes = dict(prefixes or {})
        distinct = {fold(p) for p in self._prefixes.values()}
        # A subject of the issuer with prefix P must not start with a longer prefix Q (P + …):
        # with P = "" (an issuer mapped into the plain name space) a sub such as
        # "https://partner.example#alice" would otherwise be the partner's alice. Compared
        # folded: an app that ignores case must not meet the partner's alice either.
        self._longer = {issuer: tuple(q for q in distinct if q != fold(p) and q.startswith(fold(p)))
                        for issuer, p in self._prefixes.items()}

    def prefix(self, issuer: str) -> str:
        known = self._prefixes.get(issuer)
        if known is not None:
            return known
        return default_prefix(issuer) if self._prefixes else ""

    def subject(self, issuer: str, sub: str) -> str:
        """The namespaced subject; raises ``SubjectClash``."""
        subject = self.prefix(issuer) + sub
        longer = self._longer.get(issuer, ())
        folded = fold(subject) if longer else ""
        for other in longer:
            if folded.startswith(other):
                raise SubjectClash(f"the subject reads as one of another issuer ({other!r})")
        return subject

    def knows(self, issuer: str) -> bool:
        return issuer in self._prefixes

    def holds(self, subject: str) -> bool:
        """Whether a caller of some configured issuer can be ``subject`` (a revocation naming
        any other revokes nobody: a plain ``alice`` when every issuer is namespaced, another
        case of an issuer's prefix)."""
        if not self._prefixes:
            return True
        for issuer, prefix in self._prefixes.items():
            if subject.startswith(prefix):
                try:
                    self.subject(issuer, subject[len(prefix):])
                except SubjectClash:
                    continue
                return True
        return False
