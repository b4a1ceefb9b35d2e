"""What every fuzzed component must guarantee, for any input: one ``check_*`` per component.

Shared by the hypothesis properties (tests/fuzz/test_properties.py) and the coverage-guided
atheris targets (tests/fuzz/targets.py): each check runs the real component on one input and
raises AssertionError naming the invariant it broke. "Did not crash" is the least of it: each
check also states what an accepted input means (the path the app will see, the host a browser
will visit, the only tokens and cookies that may open).

Known gaps in today's code are *tolerated* through a named switch whose default keeps the fuzz
run green; the strict form runs in test_properties.py as a strict xfail, so the day the gap is
closed that test fails and the switch goes with it:
Closed since the targets were written, switches kept at "strict": ``TOLERATE_SPLIT_UTF8``
(``/caf%C3/%A9`` passed the UTF-8 check on segments glued without their slashes, found by the
paths target), ``TOLERATED_RAW_PATH_BYTES``
(raw ``#``, ``?``, ``[``, ``]`` were accepted, issue 11 §1.2), ``TOLERATE_NONCANONICAL_JWS``
(a padded signature segment verified, §1.7); conflicting forward-auth sources (§1.1) are now
always checked.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

import ada_url
import yaml
from pydantic import BaseModel

from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.errors import BadRequest, ConfigError, InvalidToken, SessionInvalid
from gatekeeper.headernames import fold
from gatekeeper.paths import canonical_path
from gatekeeper.redirects import MAX_LENGTH, AllowedDomain, parse_allowed_domains, safe_redirect
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings, override_variables
from gatekeeper.settings.forward_auth import METHOD_CARRIERS, URI_CARRIERS, ForwardAuthSettings
from gatekeeper.tokens.claims import claim_at
from tests.fuzz.subjects import AUDIENCE, ISSUER, BearerSubject, CookieSubject

# -- paths --------------------------------------------------------------------------------------

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
PCHAR = UNRESERVED | frozenset(b"!$&'()*+,;=:@")  # RFC 3986 §3.3, escapes aside
TOLERATED_RAW_PATH_BYTES: frozenset[int] = frozenset()  # none since main refuses them (§1.2)
TOLERATE_SPLIT_UTF8 = False  # see the module docstring
TOLERATE_NONCANONICAL_JWS = False  # closed on main (§1.7): kept as a switch for the next gap
# Escapes that must never survive into a canonical path: "/", "\", "?", "#", NUL and controls.
_NEVER_ENCODED = frozenset(b"/\\?#") | frozenset(range(0x20)) | {0x7F}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 §5.2.4, the algorithm as written (rules A to E), on bytes."""
    source, out = path, b""
    while source:
        if source.startswith((b"../", b"./")):
            source = source[source.index(b"/") + 1 :]
        elif source.startswith(b"/./") or source == b"/.":
            source = b"/" + source[3:]
        elif source.startswith(b"/../") or source == b"/..":
            source = b"/" + source[4:]
            out = out[: out.rfind(b"/")] if b"/" in out else b""
        elif source in (b".", b".."):
            source = b""
        else:
            end = source.find(b"/", 1)
            end = len(source) if end == -1 else end
            out, source = out + source[:end], source[end:]
    return out


def app_view(raw_path: bytes) -> bytes:
    """The path an app acts on for ``raw_path``: repeated slashes merged first (as nginx's
    ``merge_slashes`` does before it resolves dot segments), dot segments removed, then
    percent-decoded once, as ASGI/WSGI servers do."""
    return unquote_to_bytes(remove_dot_segments(re.sub(rb"/{2,}", b"/", raw_path)))


def check_canonical_path(
    raw: bytes, *, tolerated: frozenset[int] = TOLERATED_RAW_PATH_BYTES,
    tolerate_split_utf8: bool = TOLERATE_SPLIT_UTF8,
) -> str | None:
    """The canonical form of ``raw``, or None if refused; AssertionError if an invariant breaks."""
    try:
        out = canonical_path(raw)
    except BadRequest as exc:
        assert (exc.status, exc.code) == (400, "malformed_target"), (exc.status, exc.code)
        return None
    assert isinstance(out, str) and out.isascii() and out.startswith("/"), out
    outside = sorted({chr(b) for b in raw if b not in PCHAR and b not in b"/%" and b not in tolerated})
    assert not outside, f"raw bytes outside pchar / '/' / '%XX' accepted: {outside}"
    assert canonical_path(out.encode()) == out, "not idempotent"
    segments = out.split("/")[1:]
    assert "." not in segments and ".." not in segments, f"dot segment in {out!r}"
    assert "//" not in out, f"empty segment in {out!r}"
    assert ";" not in out, f"path parameter in {out!r}"
    assert out.count("%") == len(_ESCAPE.findall(out)), f"stray '%' in {out!r}"
    for escape in _ESCAPE.findall(out):
        value = int(escape, 16)
        assert escape == escape.upper(), f"lower-case escape %{escape}"
        assert value not in UNRESERVED, f"unreserved character left encoded: %{escape}"
        assert value not in _NEVER_ENCODED, f"dangerous escape %{escape} accepted"
    assert unquote_to_bytes(out) == app_view(raw), "the app would act on another path"
    if not tolerate_split_utf8:
        assert _utf8(unquote_to_bytes(out)), f"the app would decode invalid UTF-8 from {out!r}"
    return out


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- redirects ----------------------------------------------------------------------------------

OUR_ORIGIN = "https://app.example.com"
BASE = OUR_ORIGIN + "/x/y"
ALLOWED = (".good.com", "exact.example.org", "ports.example.net:8443")
_ALLOWED_DOMAINS: tuple[AllowedDomain, ...] = parse_allowed_domains(ALLOWED)
FALLBACK = "/fallback"


def browser_goes_to(location: str) -> ada_url.URL | None:
    """Where a browser (WHATWG URL parser, ada) navigates for ``Location: location`` on BASE."""
    try:
        return ada_url.URL(ada_url.join_url(BASE, location))
    except ValueError:
        return None


def check_safe_redirect(value: str, *, allow_http: bool = False) -> str:
    result = safe_redirect(value, allowed_domains=ALLOWED, fallback=FALLBACK, allow_http=allow_http)
    if result == FALLBACK:
        return result
    assert all(0x21 <= ord(char) <= 0x7E for char in result), f"not header-safe: {result!r}"
    assert "\\" not in result
    browser = browser_goes_to(result)
    assert browser is not None, f"a browser cannot parse {result!r}"
    if result.startswith("/"):
        assert browser.origin == OUR_ORIGIN, f"{result!r} takes a browser to {browser.href}"
        assert urlsplit(urljoin(BASE, result)).netloc == "app.example.com", result
        decoded = result
        for _ in range(8):  # a server that percent-decodes again must still see a path
            decoded = unquote(decoded)
            assert not re.match(r"/[/\\\s]", decoded), f"{result!r} decodes to {decoded!r}"
    else:
        allowed_schemes = ("https:", "http:") if allow_http else ("https:",)
        assert browser.protocol in allowed_schemes, result
        assert browser.username == "" and browser.password == "", f"userinfo in {result!r}"
        port = int(browser.port) if browser.port else None
        scheme = browser.protocol.rstrip(":")
        assert any(d.admits(scheme, browser.hostname, port) for d in _ALLOWED_DOMAINS), (
            f"{result!r} takes a browser to {browser.host}, not on the allow-list")
        parts = urlsplit(result)  # urllib must agree with the browser on the host
        assert (parts.hostname, parts.port) == (browser.hostname, port), result
    if len(result) <= MAX_LENGTH:  # encoding non-ASCII may take a value past the length bound
        again = safe_redirect(result, allowed_domains=ALLOWED, fallback=FALLBACK, allow_http=allow_http)
        assert again == result, f"a safe value is not kept: {result[:300]!r} -> {again[:300]!r}"
    return result


# -- bearer tokens ------------------------------------------------------------------------------


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def canonical_b64url(segment: str) -> bool:
    """Unpadded base64url with zero spare bits: the one spelling of its bytes (RFC 7515 §2)."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == segment


def check_bearer(subject: BearerSubject, headers: list[tuple[bytes, bytes]], *,
                 exact: bool = not TOLERATE_NONCANONICAL_JWS) -> None:
    """Any header list → no credentials (None), 400 (a duplicate Authorization or token cookie)
    or 401, or the
    principal of a token the issuer signed, spelled in canonical base64url (``exact``; else any
    spelling of the same signed header and payload is tolerated)."""
    try:
        principal = subject.authenticate(headers)
    except InvalidToken as exc:
        assert exc.status == 401 and exc.code, exc
        return
    except BadRequest as exc:
        assert exc.code in ("duplicate_authorization", "duplicate_token_cookie"), exc.code
        return
    if principal is None:
        return
    token = principal.token
    assert token is not None
    signing_input = token.rpartition(".")[0]
    assert signing_input in subject.signing_inputs, f"a token nobody signed was accepted: {token!r}"
    if exact:
        assert all(canonical_b64url(s) for s in token.split(".")), (
            f"a non-canonical spelling of a signed token was accepted: {token!r}")
    assert principal.via == "bearer" and principal.issuer == ISSUER
    assert principal.claims["aud"] == AUDIENCE and principal.subject == principal.claims["sub"]
    granted = {role for path in ("roles", "groups", "realm_access.roles")
               for role in _listed(claim_at(principal.claims, path))}
    assert set(principal.roles) <= granted, f"roles no claim grants: {principal.roles}"


def _listed(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else value if isinstance(value, list) else []


# -- session cookies ----------------------------------------------------------------------------


def check_session_cookie(subject: CookieSubject, cookie_header: bytes) -> None:
    """A Cookie header → no session, ``SessionInvalid``, or exactly a session we sealed; the raw
    sealed text → its plaintext only if it is one we sealed."""
    try:
        loaded = subject.load(cookie_header)
    except SessionInvalid as exc:
        assert exc.status == 401
    else:
        if loaded is not None:
            assert any(loaded == known for known in subject.known.values()), (
                f"a session nobody sealed came out of {cookie_header[:200]!r}")
    token = cookie_header.decode("latin-1")
    try:
        subject.cipher.open(token, name=subject.name)
    except SessionInvalid:
        return
    assert token in subject.known, f"an unknown sealed value opened: {token[:200]!r}"


# -- forward-auth -------------------------------------------------------------------------------

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
PROXIES = ("nginx", "traefik", "caddy", "envoy", "custom")
CUSTOM_HEADERS = ("X-Auth-Uri", "X-Auth-Method")
_URI_CARRIERS = frozenset(fold(n.encode()) for n in URI_CARRIERS)
_METHOD_CARRIERS = frozenset(fold(n.encode()) for n in METHOD_CARRIERS)


@functools.cache
def forward_auth(proxy: str) -> ForwardAuth:
    custom = dict(zip(("uri_header", "method_header"), CUSTOM_HEADERS, strict=True))
    return ForwardAuth(ForwardAuthSettings(proxy=proxy, **(custom if proxy == "custom" else {})),
                       lambda peer: peer == TRUSTED_PEER)


TRUSTED_PEER = "127.0.0.1"  # the one peer on trusted_proxies


def check_forward_auth(proxy: str, headers: list[tuple[bytes, bytes]], *, trusted: bool,
                       target: bytes = b"/oauth2/auth", method: str = "GET") -> None:
    """``target``/``method``: the check request's own (Envoy asks at /oauth2/auth + the path)."""
    raw_path, _, query = target.partition(b"?")
    scope: dict[str, Any] = {"type": "http", "method": method, "path": raw_path.decode("latin-1"),
                             "raw_path": raw_path, "query_string": query, "headers": headers,
                             "client": (TRUSTED_PEER if trusted else "203.0.113.9", 1)}
    try:
        view = forward_auth(proxy).original(scope, "fuzz-request", 0.0)
    except BadRequest as exc:
        assert exc.status == 400
        return
    assert trusted, "an untrusted peer named the original request"
    uri_name, method_name = (n.lower().encode() if n else None
                             for n in ForwardAuthSettings(**_custom(proxy)).sources())
    if uri_name is None:
        uri = target.removeprefix(b"/oauth2/auth")
    else:
        values = [value for name, value in headers if name == uri_name]
        assert len(values) == 1, f"{uri_name!r} sent {len(values)} times and accepted"
        uri = values[0]
    if method_name is None:
        named_method = method.encode("latin-1")
    else:
        methods = [v for n, v in headers if n == method_name]
        assert len(methods) == 1, f"{method_name!r} sent {len(methods)} times and accepted"
        named_method = methods[0]
    # the configured source and nothing else decides; every other carrier agrees with it
    for name, value in headers:
        if fold(name) in _URI_CARRIERS and name != uri_name:
            assert value == uri, f"{name!r}: {value!r} disagrees with {uri!r} and was accepted"
        if fold(name) in _METHOD_CARRIERS and name != method_name:
            assert value == named_method, f"{name!r}: {value!r} disagrees with {named_method!r}"
    assert view.method == named_method.decode("latin-1") and view.method in METHODS, view.method
    # origin-form, or absolute-form whose path (empty: "/") follows the authority
    rest = uri if uri.startswith(b"/") else re.sub(rb"^(?i:https?)://[^/?#]*", b"", uri, count=1)
    rest = rest if rest.startswith(b"/") else b"/" + rest
    uri_path, _, uri_query = rest.partition(b"?")
    assert (view.raw_path, view.query) == (uri_path, uri_query), f"{view.raw_path!r} is not from {uri!r}"
    assert check_canonical_path(view.raw_path) == view.path, (view.raw_path, view.path)
    assert not re.search(rb"[\x00-\x20#\x7f-\xff]", view.query), f"query {view.query!r} accepted"


def _custom(proxy: str) -> dict[str, str]:
    if proxy != "custom":
        return {"proxy": proxy}
    return {"proxy": proxy, "uri_header": CUSTOM_HEADERS[0], "method_header": CUSTOM_HEADERS[1]}


# -- config -------------------------------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
SECRET_MARKER = "S3CR3T"  # in seeds and strategies: a value to look for in problem reports


def secret_keys(model: type[BaseModel] = Settings) -> frozenset[str]:
    """Names of the schema's fields that hold a secret (SecretStr) or may (a URL's userinfo)."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        text = repr(info.annotation)
        if "SecretStr" in text or name.endswith(("url", "uri")):
            names.add(name)
        for nested in get_args(info.annotation) or (info.annotation,):
            for inner in get_args(nested) or (nested,):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= secret_keys(inner)
    return frozenset(names)


SECRET_KEYS = secret_keys()


def check_config(path: Path, environ: Mapping[str, str]) -> Settings | None:
    """A config file → Settings, or ConfigError with one problem per line, each naming where
    (the file, ``(top level)`` or a dotted key path) and never quoting a secret's value."""
    try:
        return load_settings(path, environ)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems), exc.problems
        document = _document(path)
        roots = (str(path), "(top level)", *_known_roots(document, environ))
        # The environment holds a config secret only where the config reads one: a GATEKEEPER_*
        # override of a secret key, or a variable a secret key's value names as ${NAME}.
        referenced = {match.group(1) for text in _secret_values(document)
                      for match in _ENV_REFERENCE.finditer(text)}
        secrets = _secret_values(document) | {
            environ[name] for name in override_variables(environ)
            if name.lower().endswith(tuple(SECRET_KEYS))} | {
            value for name, value in environ.items() if name in referenced}
        # A value the file also gives a key that holds no secret may be quoted for that key.
        secrets -= _secret_values(document, secret=False)
        # A problem names its key, as it must, even where the file spells a value into a key:
        # what is judged is the rest of the line.
        keys = sorted(set(_keys(document)), key=len, reverse=True)
        for problem in exc.problems:
            rest = problem
            for key in keys:
                rest = rest.replace(key, "")
            # only marked values: a short or common one may occur in the message by chance
            echoed = [secret for secret in secrets if SECRET_MARKER in secret and secret in rest]
            assert not echoed, f"a secret was echoed: {problem!r}"
            # "<where>: <reason>", where = the file, "(top level)" or a dotted key path whose
            # first part is a key of the file, of the environment overrides, or of the schema
            assert any(problem.startswith((root + ": ", root + ":", root + ".")) for root in roots), (
                f"problem names no key: {problem!r}")
            assert problem.partition(": ")[2].strip(), f"problem gives no reason: {problem!r}"
        return None


def _document(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_bytes())
    except Exception:  # the loader has judged the file already; here it only names keys
        return None


def _secret_values(document: Any, *, secret: bool = True) -> set[str]:
    """Strings under a secret-holding key (``secret=False``: under any other key); walked
    without recursion and bounded, since a YAML alias may make the document hold itself."""
    found: set[str] = set()
    stack: list[tuple[Any, str]] = [(document, "")]
    for _ in range(100_000):
        if not stack:
            break
        node, key = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, str(k)) for k, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, key) for child in node)
        elif isinstance(node, str) and (key in SECRET_KEYS) == secret:
            found.add(node)
    return found


def _keys(document: Any) -> list[str]:
    """Every mapping key of the document, walked like ``_secret_values`` (bounded)."""
    found: list[str] = []
    stack: list[Any] = [document]
    for _ in range(100_000):
        if not stack:
            break
        node = stack.pop()
        if isinstance(node, dict):
            found.extend(str(key) for key in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _known_roots(document: Any, environ: Mapping[str, str]) -> set[str]:
    roots = set(Settings.model_fields)
    if isinstance(document, dict):
        roots |= {str(key) for key in document}
    roots |= {name[len("GATEKEEPER_"):].lower().split("__")[0] for name in environ}
    return roots
