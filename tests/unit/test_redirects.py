"""Redirect safety: an ``rd`` value becomes a same-origin path, an allow-listed URL, or the fallback."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.redirects import MAX_LENGTH, AllowedDomain, parse_allowed_domains, safe_redirect
from tests.support.paths import DATA

BASE = "https://app.example.com/x"
ORIGIN = "app.example.com"
GOOD = (".good.com",)
PUNY = "xn--bcher-kva"  # "bücher" in punycode
CORPUS_DOMAINS = (".whitelisteddomain.tld",)  # the allow-listed name the corpus attacks
CORPUS_FILE = DATA / "openredirects.txt"  # see data/README.md


def browser_resolve(location: str, base: str = BASE) -> SplitResult:
    """Where a browser goes for ``Location: location`` (the WHATWG URL parser's pre-processing)."""
    cleaned = location.strip("".join(map(chr, range(0x21))))  # C0 controls and space at the ends
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")  # "\" is "/" for http(s)
    return urlsplit(urljoin(base, cleaned))


def assert_stays_home(result: str) -> None:
    """``result`` is a path that keeps the browser, and any server decoding it again, on our origin."""
    assert result.startswith("/")
    assert result == "/" or result[1] not in "/\\"
    assert browser_resolve(result).netloc == ORIGIN
    assert urlsplit(urljoin(BASE, result)).netloc == ORIGIN
    decoded = result
    for _ in range(10):  # a server that percent-decodes again must still see a path
        decoded = unquote(decoded)
        assert not decoded.startswith(("//", "/\\")), decoded
        assert not re.match(r"/\s", decoded), decoded


def assert_header_safe(result: str) -> None:
    # printable ASCII, no space: nothing a browser would strip, fold or reinterpret
    assert all(0x21 <= ord(char) <= 0x7E for char in result), result
    assert "\\" not in result


def assert_on_allow_list(result: str, domain: str) -> None:
    parts = urlsplit(result)
    assert parts.scheme == "https"
    assert parts.username is None and parts.password is None and "@" not in parts.netloc
    assert parts.hostname is not None
    assert parts.hostname == domain or parts.hostname.endswith("." + domain)
    assert browser_resolve(result).netloc == parts.netloc  # the browser sees the same host


def load_corpus() -> list[str]:
    # split on "\n" only: some lines hold characters str.splitlines() would also split on
    lines = CORPUS_FILE.read_bytes().decode("utf-8").removesuffix("\n").split("\n")
    assert len(lines) == 559 and lines[0] == ""  # as data/README.md describes it
    return lines


CORPUS = load_corpus()
CORPUS_IDS = [repr(line)[:60] for line in CORPUS]
# The corpus lines that come through: same-origin paths whose query carries a URL. They aim at an
# open redirector inside the app (e.g. "/redirect?url="); what the app does with its query is its
# own business, and the browser stays on our origin.
CORPUS_SURVIVORS = {
    line
    for line in CORPUS
    if line.startswith(("/?url=", "/redirect?url=", "/ReceiveAutoRedirect/")) and "\\" not in line
}


@pytest.mark.parametrize("line", CORPUS, ids=CORPUS_IDS)
def test_every_corpus_line_is_neutralised(line: str) -> None:
    result = safe_redirect(line)
    assert_header_safe(result)
    assert_stays_home(result)


@pytest.mark.parametrize("line", CORPUS, ids=CORPUS_IDS)
def test_every_corpus_line_is_neutralised_with_an_allow_list(line: str) -> None:
    result = safe_redirect(line, allowed_domains=CORPUS_DOMAINS)
    assert_header_safe(result)
    if result.startswith("/"):
        assert_stays_home(result)
    else:
        assert_on_allow_list(result, "whitelisteddomain.tld")


def test_only_paths_with_a_url_in_their_query_survive_the_corpus() -> None:
    survivors = {line for line in CORPUS if safe_redirect(line, allowed_domains=CORPUS_DOMAINS) != "/"}
    assert survivors == CORPUS_SURVIVORS
    assert len(survivors) == 5
    assert all(safe_redirect(line) == line for line in survivors)


def test_the_corpus_allow_list_still_lets_its_own_domain_through() -> None:
    # so that the allow-list test above is not passing because nothing absolute ever passes
    url = "https://www.whitelisteddomain.tld/account?tab=1"
    assert safe_redirect(url, allowed_domains=CORPUS_DOMAINS) == url


HOSTILE = [
    pytest.param("//evil.com", id="a scheme-relative URL is refused"),
    pytest.param("///evil.com", id="three slashes are refused"),
    pytest.param("/\\evil.com", id="a slash then a backslash is refused"),
    pytest.param("\\/evil.com", id="a backslash then a slash is refused"),
    pytest.param("/a\\b", id="a backslash anywhere is refused"),
    pytest.param("https:evil.com", id="a scheme without slashes is refused"),
    pytest.param("https:/evil.com", id="a scheme with one slash is refused"),
    pytest.param("https:///evil.com", id="a scheme with three slashes is refused"),
    pytest.param("%2F%2Fevil.com", id="an encoded double slash is refused"),
    pytest.param("/%2F/evil.com", id="an encoded slash after the leading slash is refused"),
    pytest.param("/%2f%2fevil.com", id="two encoded slashes after the leading slash are refused"),
    pytest.param("/%5Cevil.com", id="an encoded backslash after the leading slash is refused"),
    pytest.param("/%252F%252Fevil.com", id="a double-encoded double slash is refused"),
    pytest.param("/%25252F%25252Fevil.com", id="a triple-encoded double slash is refused"),
    pytest.param("/%" + "25" * 10 + "2F", id="a value still decoding after the bound is refused"),
    pytest.param("/a/..//evil.com", id="dot segments collapsing to a double slash are refused"),
    pytest.param("/.//evil.com", id="a dot segment before a double slash is refused"),
    pytest.param("javascript:alert(1)", id="a javascript URL is refused"),
    pytest.param("JaVaScRiPt:alert(1)", id="a mixed-case javascript URL is refused"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="a data URL is refused"),
    pytest.param("/\t/evil.com", id="a tab between the slashes is refused"),
    pytest.param("/\n/evil.com", id="a newline between the slashes is refused"),
    pytest.param("/%09/evil.com", id="an encoded tab between the slashes is refused"),
    pytest.param("/a\r\nSet-Cookie: s=1", id="a raw CRLF header injection is refused"),
    pytest.param("/a%0d%0aSet-Cookie:%20s=1", id="an encoded CRLF header injection is refused"),
    pytest.param("/a%00b", id="an encoded NUL is refused"),
    pytest.param("/ /evil.com", id="a space between the slashes is refused"),
    pytest.param("/%20/evil.com", id="an encoded space between the slashes is refused"),
    pytest.param(" //evil.com", id="a leading space is refused"),
    pytest.param("/a\u2028b", id="a unicode line separator is refused"),
    pytest.param("/a\u200bb", id="a zero-width space is refused"),
    pytest.param("/a\u202eb", id="a right-to-left override is refused"),
    pytest.param("\uff0f\uff0fevil.com", id="fullwidth slashes are refused"),
    pytest.param("/\uff0fevil.com", id="a fullwidth slash after the leading slash is refused"),
    pytest.param("/\uff3cevil.com", id="a fullwidth backslash is refused"),
    pytest.param("/\u2215evil.com", id="a division slash is refused"),
    pytest.param("/\u2044evil.com", id="a fraction slash is refused"),
    pytest.param("/\u29f8evil.com", id="a big solidus is refused"),
    pytest.param("/\u3031evil.com", id="a kana repeat mark is refused"),
    pytest.param("%E2%88%95%E2%88%95evil.com", id="encoded division slashes are refused"),
    pytest.param("/%E2%88%95evil.com", id="an encoded division slash after the leading slash is refused"),
    pytest.param("/%EF%BC%8Fevil.com", id="an encoded fullwidth slash is refused"),
    pytest.param("/a%zz", id="a malformed percent escape is refused"),
    pytest.param("/" + "a" * MAX_LENGTH, id="an overlong value is refused"),
    pytest.param("", id="an empty value is refused"),
    pytest.param("evil.com", id="a bare host name is refused"),
    pytest.param("https://good.com@evil.com", id="userinfo naming an allowed host is refused"),
    pytest.param("https://app.good.com:443@evil.com", id="userinfo that looks like a port is refused"),
    pytest.param("https://:@evil.com\\@good.com", id="empty userinfo before a backslash is refused"),
    pytest.param("https://evil.com\\@good.com", id="a backslash before an allowed host is refused"),
    pytest.param("https://evil.com#@good.com", id="an allowed host in the fragment is refused"),
    pytest.param("https://evil.com?.good.com", id="an allowed host in the query is refused"),
    pytest.param("https://evil.com/.good.com", id="an allowed host in the path is refused"),
    pytest.param("https://good.com.evil.com", id="an allowed host as a subdomain of another is refused"),
    pytest.param("https://evilgood.com", id="a host merely ending like the allowed domain is refused"),
    pytest.param("https://evil.com%2F.good.com", id="an encoded slash in the host is refused"),
    pytest.param("https://evil.com\uff0f.good.com", id="a fullwidth slash in the host is refused"),
    pytest.param("https://evil.com%2egood.com", id="an encoded dot in the host is refused"),
    pytest.param("https://app.good.com./", id="a trailing dot on the host is refused"),
    pytest.param("//app.good.com/x", id="a scheme-relative URL to an allowed host is refused"),
    pytest.param("http://app.good.com/", id="http is refused unless allowed"),
    pytest.param("ftp://app.good.com/", id="another scheme is refused"),
    pytest.param("https://app.good.com:8443/", id="a port the allow-list does not name is refused"),
    pytest.param("https://app.good.com:/", id="an empty port is refused"),
    pytest.param("https://app.good.com:99999/", id="an out-of-range port is refused"),
    pytest.param("https://3627734734/", id="a host given as a 32-bit number is refused"),
    pytest.param("https://0xd8.0x3a.0xd6.0xce/", id="a host given in hex octets is refused"),
    pytest.param("https://[::ffff:216.58.214.206]/", id="an IPv6 literal is refused"),
    pytest.param("https://app.good.com//evil.com", id="a double slash in an allowed URL's path is refused"),
    pytest.param("https://app.good.com/\t", id="a tab in an allowed URL is refused"),
    pytest.param("https://faß.good.com/", id="a host that IDNA 2003 and browsers map differently is refused"),
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_fall_back(value: str) -> None:
    assert safe_redirect(value, allowed_domains=GOOD) == "/"
    assert safe_redirect(value, allowed_domains=GOOD, fallback="/home") == "/home"


def test_no_value_falls_back() -> None:
    assert safe_redirect(None) == "/"
    assert safe_redirect(None, fallback="/start") == "/start"


def test_absolute_urls_need_an_allow_list() -> None:
    assert safe_redirect("https://app.good.com/x") == "/"


SAFE = [
    pytest.param("/", "/", id="the root passes unchanged"),
    pytest.param("/app/page?x=1#frag", "/app/page?x=1#frag", id="a path with query and fragment passes"),
    pytest.param("/path%20with%20space", "/path%20with%20space", id="encoded spaces inside a path pass"),
    pytest.param("/a/./b/../c", "/a/./b/../c", id="harmless dot segments pass"),
    pytest.param("/search?next=//x", "/search?next=//x", id="a double slash in the query passes"),
    pytest.param("/wiki/Café", "/wiki/Caf%C3%A9", id="non-ASCII in a path is percent-encoded"),
    pytest.param("/a<b>\"c\"", "/a%3Cb%3E%22c%22", id="characters outside RFC 3986 are percent-encoded"),
    pytest.param("https://app.good.com/x", "https://app.good.com/x", id="an allowed subdomain passes"),
    pytest.param("https://good.com/", "https://good.com/", id="a dot entry admits the bare domain"),
    pytest.param("https://a.b.good.com", "https://a.b.good.com", id="a dot entry admits deep subdomains"),
    pytest.param("https://APP.Good.COM/x", "https://app.good.com/x", id="an upper-case host is lowered"),
    pytest.param("HTTPS://app.good.com/x", "https://app.good.com/x", id="an upper-case scheme is lowered"),
    pytest.param("https://app.good.com:443/x", "https://app.good.com/x", id="the default port is dropped"),
    pytest.param("https://a.bücher.good.com/", f"https://a.{PUNY}.good.com/", id="IDN becomes punycode"),
    pytest.param("https://a.XN--BCHER-KVA.good.com/", f"https://a.{PUNY}.good.com/", id="punycode lowered"),
]


@pytest.mark.parametrize(("value", "expected"), SAFE)
def test_safe_values_pass(value: str, expected: str) -> None:
    assert safe_redirect(value, allowed_domains=GOOD) == expected


ALLOW_LIST_CASES = [
    pytest.param(["app.good.com"], "https://app.good.com/", True, id="an exact entry admits its host"),
    pytest.param(["app.good.com"], "https://x.app.good.com/", False, id="an exact entry admits no subdomain"),
    pytest.param(["app.good.com"], "https://good.com/", False, id="an exact entry admits no parent"),
    pytest.param(["*.good.com"], "https://good.com/", True, id="a star entry admits the bare domain"),
    pytest.param(["*.good.com"], "https://a.good.com/", True, id="a star entry admits subdomains"),
    pytest.param([".good.com"], "https://evilgood.com/", False, id="a dot entry keeps to the dot boundary"),
    pytest.param(["*.good.com"], "https://evilgood.com/", False, id="a star entry keeps to the dot boundary"),
    pytest.param(["good.com:8443"], "https://good.com:8443/", True, id="a port entry admits its port"),
    pytest.param(["good.com:8443"], "https://good.com/", False, id="a port entry admits no other port"),
    pytest.param(["good.com:*"], "https://good.com:9999/", True, id="a star port admits any port"),
    pytest.param(["good.com:*"], "https://good.com/", True, id="a star port admits the default port"),
    pytest.param(["good.com:443"], "https://good.com/", True, id="the default port is the same as none"),
    pytest.param(["bücher.example"], f"https://{PUNY}.example/", True, id="an IDN entry admits its punycode"),
    pytest.param([f".{PUNY}.example"], "https://a.bücher.example/", True, id="a punycode entry admits IDN"),
    pytest.param(["10.0.0.5:8443"], "https://10.0.0.5:8443/", True, id="an IPv4 entry admits its address"),
    pytest.param(["10.0.0.5"], "https://010.0.0.5/", False, id="an IPv4 entry admits no octal spelling"),
]


@pytest.mark.parametrize(("entries", "url", "admitted"), ALLOW_LIST_CASES)
def test_allow_list_matching(entries: list[str], url: str, admitted: bool) -> None:
    assert (safe_redirect(url, allowed_domains=entries) != "/") is admitted


def test_http_passes_only_when_allowed() -> None:
    url = "http://app.good.com/x"
    assert safe_redirect(url, allowed_domains=GOOD) == "/"
    assert safe_redirect(url, allowed_domains=GOOD, allow_http=True) == url


def test_allow_list_entries_are_canonicalised() -> None:
    assert parse_allowed_domains([".Good.com", "*.b.org:*", "bücher.example:8443", "10.0.0.5"]) == (
        AllowedDomain("good.com", True, None),
        AllowedDomain("b.org", True, "*"),
        AllowedDomain("xn--bcher-kva.example", False, 8443),
        AllowedDomain("10.0.0.5", False, None),
    )


def test_bad_allow_list_entries_are_reported_together() -> None:
    bad = ["https://good.com", "good.com/path", "*", "", "good.com:abc", "a..b", " good.com", ".10.0.0.5"]
    with pytest.raises(ValueError, match="invalid allowed redirect domain") as caught:
        parse_allowed_domains([*bad, "fine.com"])
    for entry in bad:
        assert repr(entry) in str(caught.value)
    assert "'fine.com'" not in str(caught.value)
    with pytest.raises(ValueError):
        safe_redirect("/", allowed_domains=["https://good.com"])


def test_a_bare_string_is_not_an_allow_list() -> None:
    with pytest.raises(TypeError):
        safe_redirect("https://good.com/", allowed_domains="good.com")
    with pytest.raises(TypeError):
        parse_allowed_domains("good.com")


# Pieces that make up redirect attacks, so hypothesis builds tricky values and not just noise.
PIECES = [
    "/", "//", "\\", "%2f", "%2F", "%5c", "%25", "%252f", "%09", "%0a", "%0d", "%00", "%20", "%E3%80%82",
    "%EF%BC%8F", "\t", "\n", "\r", " ", "\x00", "@", ":", "#", "?", ".", "..", ";", "&", "=", "https:",
    "https://", "HTTPS://", "http://", "javascript:", "good.com", ".good.com", "app.good.com", "evil.com",
    "evilgood.com", "xn--bcher-kva", "bücher", "\uff0f", "\uff3c", "\u2215", "\u2044", "\u3002", "\uff0e",
    "\u3031", "\u3000", "\u200b",
    ":443", ":8443", ":", "[::1]", "0x7f", "127.0.0.1", "a", "é", "%E2%88%95", "%C0%AF",
]  # fmt: skip
values = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))


def assert_safe(result: str) -> None:
    assert_header_safe(result)
    if result.startswith("/"):
        assert_stays_home(result)
    else:
        assert_on_allow_list(result, "good.com")


@settings(max_examples=600, deadline=None)
@given(values)
def test_any_text_becomes_a_safe_location(value: str) -> None:
    assert_safe(safe_redirect(value))
    assert_safe(safe_redirect(value, allowed_domains=GOOD))
    assert safe_redirect(value).startswith("/")  # without an allow-list nothing absolute passes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_any_url_on_an_allowed_host_is_admitted_only_if_safe(tail: str) -> None:
    for prefix in ("https://app.good.com", "https://app.good.com/", "/"):
        assert_safe(safe_redirect(prefix + tail, allowed_domains=GOOD))


@settings(max_examples=200, deadline=None)
@given(values)
def test_a_safe_result_is_a_fixed_point(value: str) -> None:
    # what we emit is already canonical: feeding it back changes nothing
    result = safe_redirect(value, allowed_domains=GOOD)
    assert safe_redirect(result, allowed_domains=GOOD) == result
