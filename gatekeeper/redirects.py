"""Redirect targets: which ``rd`` values may become a ``Location`` header.

After a login or a logout gatekeeper sends the browser back where it was going, and that place
comes from the browser itself (``/oauth2/start?rd=…``). Left unchecked, gatekeeper becomes an open
redirector: a link on the company's own domain that drops a freshly logged-in user on a phishing
page. :func:`safe_redirect` lets two shapes through and returns the fallback for anything else:

* a same-origin relative path, ``/app/page?x=1#frag``;
* an absolute ``https`` URL (``http`` only with ``allow_http=True``) whose host is on the
  allow-list. An entry is an exact host (``app.example.com``) or a domain written ``.example.com``
  or ``*.example.com``, which admits ``example.com`` itself and every name under it, matched on a
  dot boundary (so never ``badexample.com``). This is what oauth2-proxy's ``--whitelist-domain``
  does. An entry may name a port (``example.com:8443``) or any port (``example.com:*``); without
  one, only the scheme's default port is admitted. A canonical dotted-quad IPv4 address may be an
  exact entry.

The rules are stricter than the URL grammar because what counts is how a *browser* reads the
``Location`` (WHATWG URL Standard: it drops tabs and newlines, reads ``\\`` as ``/``, and takes
``//host`` to be another host) and how a server that percent-decodes once more would read it.
Advisories behind these rules:

* oauth2-proxy CVE-2021-21291 (GHSA-4mf2-f3wh-gvf2): ``.example.com`` also matched ``badexample.com``;
* oauth2-proxy CVE-2020-5233 (GHSA-qqxw-m5fj-f7gv): ``/\\evil.com`` got past the ``//`` check;
  CVE-2020-4037: a later bypass of the same check, fixed in 6.0.0; bitly oauth2_proxy
  CVE-2017-1000070: redirects at the start and end of the flow were not checked;
* mod_auth_openidc CVE-2019-20479 (logout URL starting ``/\\``), CVE-2021-32786
  (``oidc_validate_redirect_url()`` did not parse URLs the way browsers do), CVE-2021-39191
  (``target_link_uri``), CVE-2022-23527 (open redirect in the default setup);
* mod_auth_mellon CVE-2019-3877 (``/\\``) and CVE-2019-13038 (``http:www.malicious.com``).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["MAX_LENGTH", "AllowedDomain", "parse_allowed_domains", "safe_redirect"]

MAX_LENGTH: Final = 2048  # longer values fall back rather than being truncated
# A value that still changes after this many rounds of percent-decoding is refused: a legitimate
# target is not encoded seven times over, and the bound keeps the work linear.
_MAX_DECODINGS: Final = 6

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Characters that look like URL syntax but have no NFKC decomposition that would reveal it
# (FULLWIDTH SOLIDUS U+FF0F and friends decompose to "/" and are caught by `_is_suspicious`).
_LOOKALIKES: Final = frozenset(
    "\u2044\u2215\u2216"  # fraction slash, division slash, set minus
    "\u2571\u2572\u27cb\u27cd"  # box-drawing and mathematical diagonals
    "\u29f5\u29f8\u29f9"  # reverse solidus operator, big solidus, big reverse solidus
    "\u3002\uff61"  # ideographic full stops: UTS 46 (browsers' IDNA) reads them as "."
    "\u3031\u3033\u3035\u309d\u30fc\uff70"  # kana marks used as "/" in open-redirect corpora
)
# Invisible, private, unassigned or whitespace characters: never part of a target we emit.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
# IDNA 2003 (Python's codec) maps these to ASCII, UTS 46 (browsers) keeps them: hosts would differ.
_IDNA_DEVIATIONS: Final = frozenset("\u00df\u03c2")

_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_PORT: Final = re.compile(r"[0-9]{1,5}")
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG "ends in a number": browsers parse such a host as IPv4 (octal, hex, a bare integer).
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PATH_END: Final = re.compile(r"[?#]")
# RFC 3986 reserved and unreserved characters, except "[]", plus "%" (escapes are kept as sent).
_SAFE_CHARS: Final = "!#$%&'()*+,/:;=?@-._~"


@dataclass(frozen=True, slots=True)
class AllowedDomain:
    """One allow-list entry, canonical: lower-case ASCII (punycode) host."""

    host: str
    subdomains: bool  # written ".host" or "*.host": the host itself and every name under it
    port: int | Literal["*"] | None  # None: the scheme's default port only

    def admits(self, scheme: str, host: str, port: int | None) -> bool:
        if host != self.host and not (self.subdomains and host.endswith("." + self.host)):
            return False
        if self.port == "*":
            return True
        default = _DEFAULT_PORTS[scheme]
        return (default if port is None else port) == (default if self.port is None else self.port)


def parse_allowed_domains(entries: Iterable[str]) -> tuple[AllowedDomain, ...]:
    """Check allow-list entries (meant for config load); ValueError names every bad entry at once."""
    if isinstance(entries, str):  # a bare string would be taken one character at a time
        raise TypeError("allowed domains must be a sequence of strings, not a string")
    parsed: list[AllowedDomain] = []
    bad: list[str] = []
    for entry in entries:
        domain = _parse_entry(entry)
        if domain is None:
            bad.append(entry)
        else:
            parsed.append(domain)
    if bad:
        raise ValueError(
            "invalid allowed redirect domain(s), expected host, .domain or *.domain with an optional"
            " :port or :*: " + ", ".join(map(repr, bad))
        )
    return tuple(parsed)


def safe_redirect(
    value: str | None,
    *,
    allowed_domains: Sequence[str] = (),
    fallback: str = "/",
    allow_http: bool = False,
) -> str:
    """``value`` if it is a safe ``Location``, made ASCII; else ``fallback`` (trusted, returned as is).

    Safe means a same-origin path (one leading ``/``) or an absolute URL on ``allowed_domains``;
    see the module docstring. Non-ASCII characters that survive the checks are percent-encoded as
    UTF-8, and an admitted absolute URL comes back with its scheme and host in canonical form.
    A malformed ``allowed_domains`` entry raises ValueError (see `parse_allowed_domains`).
    """
    if isinstance(allowed_domains, str):  # a bare string would be taken one character at a time
        raise TypeError("allowed_domains must be a sequence of strings, not a string")
    domains = _parsed_domains(tuple(allowed_domains))
    if not value or len(value) > MAX_LENGTH:
        return fallback
    # The raw value must be printable, without spaces or backslashes, with well-formed escapes;
    # every decoded form may hold spaces ("/a%20b") but nothing else the raw form may not.
    if not _chars_ok(value, space_ok=False) or _BAD_ESCAPE.search(value):
        return fallback
    forms = _decodings(value)
    if forms is None or not all(_chars_ok(form, space_ok=True) for form in forms):
        return fallback
    if value.startswith("/"):
        result = _relative(value, forms)
    elif domains:
        result = _absolute(value, forms, domains, allow_http=allow_http)
    else:
        result = None  # without an allow-list only same-origin paths pass
    return fallback if result is None else result


def _relative(value: str, forms: list[str]) -> str | None:
    for form in (value, *forms):
        # "/" then "/", "\" (refused earlier) or whitespace is how a path turns into a host
        if not form.startswith("/") or form[1:2] in ("/", " "):
            return None
        if not _path_ok(_PATH_END.split(form, maxsplit=1)[0]):
            return None
    return quote(value, safe=_SAFE_CHARS)


def _absolute(
    value: str, forms: list[str], domains: tuple[AllowedDomain, ...], *, allow_http: bool
) -> str | None:
    match = _ABSOLUTE.fullmatch(value)
    if match is None:
        return None  # "https:evil", "https:/evil", "javascript:…", "data:…"
    scheme, authority, rest = match[1].lower(), match[2], match[3]
    if scheme != "https" and not (scheme == "http" and allow_http):
        return None
    try:  # urllib must see the same authority and give the same URL back, or we refuse
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.netloc != authority or urlunsplit(parts) != f"{scheme}://{authority}{rest}":
        return None
    host_port = _host_port(authority)  # refuses userinfo: "@" is not in a host or a port
    if host_port is None:
        return None
    host, port = host_port
    if not any(domain.admits(scheme, host, port) for domain in domains):
        return None
    # The authority holds no "%", so each decoded form keeps it and its rest starts at the same place.
    for form in (value, *forms):
        if not _path_ok(_PATH_END.split(form[match.end(2) :], maxsplit=1)[0]):
            return None
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}{quote(rest, safe=_SAFE_CHARS)}"


def _path_ok(path: str) -> bool:
    # An empty segment anywhere can become a leading "//" once dot segments go: "/a/..//evil".
    return "//" not in path


def _host_port(authority: str) -> tuple[str, int | None] | None:
    host, colon, port_text = authority.partition(":")
    port: int | None = None
    if colon:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            return None  # also "host:" (empty port) and a second ":" (IPv6 is not supported)
        port = int(port_text)
    canonical = _canonical_host(host)
    return None if canonical is None else (canonical, port)


def _canonical_host(host: str) -> str | None:
    """Lower-case ASCII (punycode) DNS name or canonical dotted-quad IPv4; None for anything else."""
    if not host.isascii():
        if not _idn_ok(host):
            return None
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower()
    labels = host.split(".")
    # Letters, digits, "-" and "_" only: this also refuses what IDNA mapped to "/", "@", "%" etc.
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None  # includes empty labels: "a..b", and the trailing dot of "good.com."
    if not all(_punycode_ok(label) for label in labels if label.startswith("xn--")):
        return None
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:  # browsers read "3627734734" or "0xd8.0x3a.0xd6.0xce" as addresses: canonical only
            return host if str(ipaddress.IPv4Address(host)) == host else None
        except ValueError:
            return None
    return host


def _idn_ok(text: str) -> bool:
    return not any(char in _IDNA_DEVIATIONS or _is_suspicious(char) for char in text if not char.isascii())


def _punycode_ok(label: str) -> bool:
    """An ``xn--`` label must be valid punycode for a name that would itself pass as a host."""
    try:
        unicode = label.encode("ascii").decode("idna")  # raises unless it round-trips
    except UnicodeError:
        return False  # browsers refuse to load such a host; we refuse to redirect to it
    return _idn_ok(unicode)


def _parse_entry(entry: str) -> AllowedDomain | None:
    text = entry.lower()
    subdomains = text.startswith((".", "*."))
    text = text.removeprefix("*").removeprefix(".") if subdomains else text
    host, colon, port_text = text.partition(":")
    port: int | Literal["*"] | None = None
    if colon:
        if port_text == "*":
            port = "*"
        elif _PORT.fullmatch(port_text) and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            return None
    if not host or not _chars_ok(host, space_ok=False):
        return None
    canonical = _canonical_host(host)
    if canonical is None or (subdomains and _NUMERIC_LABEL.fullmatch(canonical.rsplit(".", 1)[-1])):
        return None  # an IP address has no subdomains
    return AllowedDomain(canonical, subdomains, port)


@lru_cache(maxsize=64)
def _parsed_domains(entries: tuple[str, ...]) -> tuple[AllowedDomain, ...]:
    return parse_allowed_domains(entries)


def _decodings(value: str) -> list[str] | None:
    """The successive percent-decodings of ``value`` until stable; None if not stable in time."""
    forms: list[str] = []
    current = value
    for _ in range(_MAX_DECODINGS + 1):
        decoded = unquote(current)  # invalid UTF-8 becomes U+FFFD; malformed escapes stay as is
        if decoded == current:
            return forms
        forms.append(decoded)
        current = decoded
    return None


def _chars_ok(text: str, *, space_ok: bool) -> bool:
    for char in text:
        if char.isascii():
            # isprintable() is False for C0 controls and DEL; browsers strip tab/CR/LF silently.
            if char == "\\" or not char.isprintable() or (char == " " and not space_ok):
                return False
        elif _is_suspicious(char):
            return False
    return True


@lru_cache(maxsize=4096)
def _is_suspicious(char: str) -> bool:
    """A non-ASCII character that is invisible or whitespace, or that NFKC or UTS 46 map to syntax."""
    if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _LOOKALIKES:
        return True
    folded = unicodedata.normalize("NFKC", char)  # U+FF0F -> "/", U+2100 -> "a/c"
    return any((c.isascii() and not c.isalnum()) or c in _LOOKALIKES for c in folded)
