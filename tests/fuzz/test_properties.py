"""Hypothesis properties of the fuzzed components, through the same invariant checks the atheris
targets use (invariants.py), plus the committed seed corpus replayed through every target.

Strategies build inputs from the pieces attacks are made of (dot segments, escapes, slashes and
backslashes, lookalike characters, allow-listed and foreign hosts, edits of real tokens and
cookies), so a hundred examples reach further than random bytes would. Each component also has a
"still works" property, so that refusing everything cannot pass.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings
from tests.fuzz import invariants, subjects, targets

PROPERTY = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


SLOW_PROPERTY = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _one_loop_closed_at_the_end() -> Iterator[None]:
    yield
    subjects.close_loop()

# -- paths --------------------------------------------------------------------------------------

PATH_PIECES = ["a", "b", "admin", "public", ".", "..", "%2e", "%2E%2e", ".%2e", "%2F", "%2f", "%5C",
               "%00", "%0a", "%61", "%41", "%7E", "%C3%A9", "%C3", "%A9", "%c0%ae", "%ff", "%25",
               "%252F", "%", "%G1", ";", "#", "?", "[", "]", " ", "\t", "\\", "\u00e9", "~", "@", ":",
               "!", "'", "*", "+", "=", "&", "$", ","]
path_bytes = st.one_of(
    st.lists(st.lists(st.sampled_from(PATH_PIECES), max_size=3).map("".join), max_size=8)
    .map(lambda segments: ("/" + "/".join(segments)).encode("utf-8")),
    st.binary(max_size=40).map(lambda raw: b"/" + raw),
    st.binary(max_size=20),
)
PLAIN = string.ascii_letters + string.digits + "-._~!$&'()*+,=:@"


@PROPERTY
@given(path_bytes)
@example(b"/a//caf%C3/%A9")  # found by the atheris paths target: see TOLERATE_SPLIT_UTF8
def test_canonical_path_keeps_its_invariants(raw: bytes) -> None:
    invariants.check_canonical_path(raw)


@PROPERTY
@given(st.lists(st.text(PLAIN, min_size=1).filter(lambda s: s not in (".", "..")), max_size=6),
       st.booleans())
def test_a_path_of_plain_segments_is_accepted_unchanged(segments: list[str], trailing: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing and segments else "")
    assert invariants.check_canonical_path(path.encode()) == path


@pytest.mark.parametrize("raw", [
    pytest.param(b"/public/x#/../admin", id="a raw '#' is refused"),
    pytest.param(b"/public/x?/../admin", id="a raw '?' in the path part is refused"),
    pytest.param(b"/a[0]", id="a raw '[' is refused"),
    pytest.param(b"/a]", id="a raw ']' is refused"),
])
def test_no_raw_byte_outside_pchar_is_accepted(raw: bytes) -> None:
    invariants.check_canonical_path(raw, tolerated=frozenset())


def test_the_app_never_decodes_invalid_utf8_from_a_canonical_path() -> None:
    assert invariants.check_canonical_path(b"/caf%C3/%A9", tolerate_split_utf8=False) is None
    assert invariants.check_canonical_path(b"/caf%C3%A9/x", tolerate_split_utf8=False) == "/caf%C3%A9/x"


# -- redirects ----------------------------------------------------------------------------------

REDIRECT_PIECES = ["https:", "http:", "HTTPS:", "javascript:", "//", "/", "\\", "/\\", "\t", "\n", " ",
                   "\x00", "%2F", "%5C", "%09", "%252F", "a.good.com", "good.com", "evil.com",
                   "good.com.evil.com", "evil.com@", "@", ":8443", ":443", ":80", "exact.example.org",
                   "ports.example.net", "0x7f.1", "127.0.0.1", "xn--bcher-kva.", "\uff45vil.com",
                   "\uff0f", "\u2215", "\u3002", "?x=//evil.com", "#//evil.com", "/..", "%2e%2e", ".",
                   "\u00e9", "[::1]", "%40"]
redirect_text = st.one_of(
    st.lists(st.sampled_from(REDIRECT_PIECES), max_size=8).map("".join),
    st.text(max_size=30),
)


@PROPERTY
@given(redirect_text, st.booleans())
def test_an_accepted_redirect_stays_home_or_on_the_allow_list(value: str, allow_http: bool) -> None:
    invariants.check_safe_redirect(value, allow_http=allow_http)


@PROPERTY
@given(st.lists(st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8), max_size=3),
       st.text(string.ascii_letters + string.digits + "/-_", max_size=20))
def test_safe_targets_still_pass(labels: list[str], path: str) -> None:
    relative = "/" + re.sub("/+", "/", path).lstrip("/")
    assert invariants.check_safe_redirect(relative) == relative
    absolute = "https://" + ".".join([*labels, "good.com"]) + relative
    assert invariants.check_safe_redirect(absolute) == absolute


# -- bearer tokens ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bearer() -> subjects.BearerSubject:
    return targets.bearer_subject()


B64_EDITS = st.sampled_from(list(string.ascii_letters + string.digits + "-_+/=. \t\"\\\x00"))


@st.composite
def edited_token(draw: st.DrawFn) -> str:
    token = draw(st.sampled_from(subjects.TOKENS))
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(token)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "pad", "truncate"]))
        char = draw(B64_EDITS)
        if kind == "replace":
            token = token[:index] + char + token[index + 1 :]
        elif kind == "insert":
            token = token[:index] + char + token[index:]
        elif kind == "delete":
            token = token[:index] + token[index + 1 :]
        elif kind == "pad":
            token += "=" * draw(st.integers(1, 3))
        else:
            token = token[:index]
    return token


@PROPERTY
@given(edited_token(), st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Bearer\t", "Basic "]),
       st.sampled_from(["authorization", "cookie"]))
def test_a_token_is_a_principal_only_as_the_issuer_signed_it(
        bearer: subjects.BearerSubject, token: str, scheme: str, source: str) -> None:
    value = scheme + token if source == "authorization" else f"{subjects.COOKIE_TOKEN_NAME}={token}"
    invariants.check_bearer(bearer, [(source.encode(), value.encode())])


@PROPERTY
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_random_authorization_headers_are_401_or_no_credentials(
        bearer: subjects.BearerSubject, first: bytes, second: bytes) -> None:
    invariants.check_bearer(bearer, [(b"authorization", first)])
    invariants.check_bearer(bearer, [(b"authorization", first), (b"authorization", second)])


@pytest.mark.parametrize("token", subjects.TOKENS, ids=["alice ES256", "bob EdDSA", "carol", "dave"])
def test_every_signed_token_is_still_accepted(bearer: subjects.BearerSubject, token: str) -> None:
    principal = bearer.authenticate([(b"authorization", f"Bearer {token}".encode())])
    assert principal is not None and principal.token == token


def test_a_padded_signature_segment_is_refused(bearer: subjects.BearerSubject) -> None:
    token = subjects.TOKENS[1] + "=="
    invariants.check_bearer(bearer, [(b"authorization", f"Bearer {token}".encode())], exact=True)


# -- session cookies ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cookies() -> tuple[subjects.CookieSubject, list[str]]:
    subject = targets.cookie_subject()
    headers = [subject.seal(subjects.session("erin")), subject.seal(subjects.session("frank", padding=7000))]
    return subject, headers


@st.composite
def edited_cookie(draw: st.DrawFn, header: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(header)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "count", "drop", "swap", "dup"]))
        pairs = header.split("; ")
        if kind == "replace":
            header = header[:index] + draw(B64_EDITS) + header[index + 1 :]
        elif kind == "insert":
            header = header[:index] + draw(B64_EDITS) + header[index:]
        elif kind == "delete":
            header = header[:index] + header[index + 1 :]
        elif kind == "count":
            name, _, value = pairs[0].partition("=")
            prefix = draw(st.sampled_from(["01.", "+1.", " 1.", "0.", "17.", "2.", "1.1.", ""]))
            pairs[0] = f"{name}={prefix}{value.partition('.')[2]}"
            header = "; ".join(pairs)
        elif kind == "drop" and len(pairs) > 1:
            header = "; ".join(pairs[:-1])
        elif kind == "swap" and len(pairs) > 2:  # two chunks' values trade places
            (one, _, first), (two, _, second) = pairs[1].partition("="), pairs[2].partition("=")
            header = "; ".join([pairs[0], f"{one}={second}", f"{two}={first}", *pairs[3:]])
        elif kind == "dup":
            header = pairs[0].partition("=")[0] + "=" + draw(st.text(PLAIN, max_size=10)) + "; " + header
    return header


@PROPERTY
@given(st.data())
def test_an_edited_session_cookie_never_opens(
        cookies: tuple[subjects.CookieSubject, list[str]], data: st.DataObject) -> None:
    subject, headers = cookies
    original = data.draw(st.sampled_from(headers))
    edited = data.draw(edited_cookie(original))
    invariants.check_session_cookie(subject, edited.encode("latin-1", errors="replace"))


@PROPERTY
@given(st.binary(max_size=300))
def test_random_cookie_headers_never_open(
        cookies: tuple[subjects.CookieSubject, list[str]], raw: bytes) -> None:
    invariants.check_session_cookie(cookies[0], raw)


def test_the_sealed_cookies_still_open(cookies: tuple[subjects.CookieSubject, list[str]]) -> None:
    subject, headers = cookies
    for header in headers:
        assert subject.load(header.encode()) in subject.known.values()


# -- forward-auth -------------------------------------------------------------------------------

FA_NAMES = [b"x-original-uri", b"x-forwarded-uri", b"x-original-url", b"x-rewrite-url", b"x-auth-uri",
            b"x-original-method", b"x-forwarded-method", b"x-http-method-override", b"x-auth-method",
            b"x_original_uri", b"X-Forwarded-Uri", b"host"]
fa_values = st.one_of(path_bytes, st.sampled_from([b"GET", b"POST", b"post", b"DELETE", b"BREW", b""]),
                      path_bytes.map(lambda p: p + b"?q=/admin"),
                      path_bytes.map(lambda p: b"https://app.example.com" + p))


@PROPERTY
@given(st.sampled_from(invariants.PROXIES),
       st.lists(st.tuples(st.sampled_from(FA_NAMES), fa_values), max_size=5), st.booleans(),
       path_bytes, st.sampled_from(["GET", "POST", "get", "BREW"]))
def test_forward_auth_decides_only_on_its_configured_source(
        proxy: str, headers: list[tuple[bytes, bytes]], trusted: bool, target: bytes, method: str) -> None:
    invariants.check_forward_auth(proxy, headers, trusted=trusted, target=b"/oauth2/auth" + target,
                                  method=method)


@pytest.mark.parametrize(("proxy", "headers", "target", "expected"), [
    pytest.param("nginx", [(b"x-original-uri", b"/public/%61?x=1"), (b"x-original-method", b"GET")],
                 b"/oauth2/auth", "/public/a", id="nginx reads X-Original-URI"),
    pytest.param("traefik", [(b"x-forwarded-uri", b"/a/b"), (b"x-forwarded-method", b"POST")],
                 b"/oauth2/auth", "/a/b", id="traefik reads X-Forwarded-Uri"),
    pytest.param("custom", [(b"x-auth-uri", b"https://h.example/c"), (b"x-auth-method", b"GET")],
                 b"/oauth2/auth", "/c", id="a custom header may hold an absolute URL"),
    pytest.param("envoy", [], b"/oauth2/auth/e/f", "/e/f", id="envoy asks at /oauth2/auth + the path"),
])
def test_forward_auth_still_reads_the_original_request(
        proxy: str, headers: list[tuple[bytes, bytes]], target: bytes, expected: str) -> None:
    scope = {"type": "http", "method": "GET", "path": target.decode(), "raw_path": target,
             "query_string": b"", "headers": headers, "client": (invariants.TRUSTED_PEER, 1)}
    assert invariants.forward_auth(proxy).original(scope, "test-request", 0.0).path == expected
    invariants.check_forward_auth(proxy, headers, trusted=True, target=target)


# -- config -------------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.sampled_from(["0.0.0.0:4180", "http://127.0.0.1:8080", "/public/*", "cookie",
                                     "redis", "RS256",
                                     invariants.SECRET_MARKER + "-0123456789abcdefghijklmnopqrstuvwxyz",
                                     "redis://:" + invariants.SECRET_MARKER + "@127.0.0.1:6379/0",
                                     "${UNSET_VARIABLE}", "${HOME:-x}"]),
                    st.text(max_size=12))
KEYS = st.sampled_from([*Settings.model_fields, *sorted(invariants.SECRET_KEYS), "issuers",
                        "audience", "issuer", "providers", "client_id", "store", "x"])
documents = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20)


@SLOW_PROPERTY
@given(st.dictionaries(KEYS, documents, max_size=6),
       st.dictionaries(st.sampled_from(["GATEKEEPER_LISTEN", "GATEKEEPER_SESSION__SECRET", "GATEKEEPER_AUTH",
                                        "GATEKEEPER_AUTH__LEEWAY_SECONDS", "GATEKEEPER_PUBLIC_PATHS"]),
                       st.sampled_from(["x", "[", "{}", "[1, 2]", "0.0.0.0:1", invariants.SECRET_MARKER * 3]),
                       max_size=3))
def test_a_config_loads_or_names_each_problem_by_key(
        tmp_path_factory: pytest.TempPathFactory, document: dict[str, object],
        environ: dict[str, str]) -> None:
    path = tmp_path_factory.mktemp("config") / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(document))
    invariants.check_config(path, environ)


ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))


@pytest.mark.parametrize(("content", "expected"), [
    pytest.param(b"when: 2001-02-30\n", "date or number",
                 id="an impossible date is a problem, not a ValueError"),
    pytest.param(b"listen: " + b"9" * 5000 + b"\n", "date or number", id="a 5000-digit number is a problem"),
    pytest.param(b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply",
                 id="deep YAML nesting is a problem, not a RecursionError"),
    pytest.param(b"a: &a [*a]\n", "nested deeper than", id="a list holding itself is a problem"),
    pytest.param(ALIAS_BOMB.encode(), "aliases are expanded",
                 id="an alias bomb is refused before it expands"),
    pytest.param(b"listen: \xff\xfe\n", "not UTF-8", id="a file that is not UTF-8 is a problem"),
])
def test_a_hostile_config_file_is_one_problem_naming_the_file(
        tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert len(caught.value.problems) == 1 and expected in caught.value.problems[0]
    invariants.check_config(path, {})


def test_a_deeply_nested_json_override_is_a_problem_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("listen: 0.0.0.0:4180\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"GATEKEEPER_PUBLIC_PATHS": "[" * 100_000})
    assert caught.value.problems == ["public_paths: Input should be a valid list (set by the "
                                     "environment variable GATEKEEPER_PUBLIC_PATHS)"]


# -- the seed corpus, replayed ------------------------------------------------------------------

SEEDS = [pytest.param(name, seed, id=f"{name}/{seed.name}")
         for name in targets.TARGETS for seed in targets.seed_files(name)]


@pytest.mark.parametrize(("name", "seed"), SEEDS)
def test_every_seed_keeps_the_invariants(name: str, seed: Path) -> None:
    targets.TARGETS[name](seed.read_bytes())
