"""weborigin.py: origins parsed exactly, and the one-label wildcard of the ``cors`` rules, against
the classic ways a loose matcher lets another origin in (suffix, user info, port, scheme, case,
trailing dot, IDN look-alikes, ``null``)."""

from __future__ import annotations

import pytest

from gatekeeper.weborigin import parse_origin, parse_origin_pattern

# (pattern, Origin as a browser would send it, matches?)
MATCHES: list[tuple[str, str, str, bool]] = [
    ("one label", "https://*.example.com", "https://app.example.com", True),
    ("one punycode label (an IDN subdomain as browsers send it)", "https://*.example.com",
     "https://xn--bcher-kva.example.com", True),
    ("a label with a hyphen", "https://*.example.com", "https://my-app.example.com", True),
    ("the pattern's explicit port", "https://*.example.com:8443", "https://app.example.com:8443", True),
    ("the default port written out", "https://*.example.com", "https://app.example.com:443", True),
    ("upper case (origins compare case-insensitively)", "https://*.example.com",
     "HTTPS://APP.EXAMPLE.COM", True),
    ("suffix without a dot", "https://*.example.com", "https://evilexample.com", False),
    ("the bare base domain", "https://*.example.com", "https://example.com", False),
    ("two labels deep", "https://*.example.com", "https://a.b.example.com", False),
    ("the base as a label of another domain", "https://*.example.com",
     "https://app.example.com.evil.net", False),
    ("the base inside another label", "https://*.example.com", "https://app.example.community", False),
    ("trailing dot", "https://*.example.com", "https://app.example.com.", False),
    ("an empty label", "https://*.example.com", "https://.example.com", False),
    ("a label of dots", "https://*.example.com", "https://a..example.com", False),
    ("a label starting with a hyphen", "https://*.example.com", "https://-x.example.com", False),
    ("user info naming the base", "https://*.example.com", "https://app.example.com@evil.net", False),
    ("user info before the host", "https://*.example.com", "https://evil@app.example.com", False),
    ("another port", "https://*.example.com", "https://app.example.com:8443", False),
    ("the default port when the pattern has one", "https://*.example.com:8443",
     "https://app.example.com", False),
    ("http against https", "https://*.example.com", "http://app.example.com", False),
    ("https against http", "http://*.example.com", "https://app.example.com", False),
    ("another scheme", "https://*.example.com", "wss://app.example.com", False),
    ("a path", "https://*.example.com", "https://app.example.com/", False),
    ("null", "https://*.example.com", "null", False),
    ("a Cyrillic look-alike, raw", "https://*.example.com", "https://app.ex\u0430mple.com", False),
    ("a punycode look-alike of the base", "https://*.example.com", "https://app.xn--exmple-cua.com", False),
    ("an IPv6 literal", "https://*.example.com", "https://[::1]", False),
    ("two origins in one value", "https://*.example.com",
     "https://app.example.com https://evil.net", False),
]


@pytest.mark.parametrize(("pattern", "origin", "expected"), [m[1:] for m in MATCHES],
                         ids=[m[0] for m in MATCHES])
def test_a_wildcard_matches_exactly_one_whole_label_on_the_same_scheme_and_port(
    pattern: str, origin: str, expected: bool,
) -> None:
    compiled = parse_origin_pattern(pattern)
    assert compiled is not None
    parsed = parse_origin(origin)  # what cors.py compares: the serialized origin, or nothing
    assert (parsed is not None and compiled.matches(parsed)) is expected


PATTERNS: list[tuple[str, str, bool]] = [
    ("https, two labels", "https://*.example.com", True),
    ("http with a port", "http://*.example.com:8080", True),
    ("upper case", "HTTPS://*.EXAMPLE.COM", True),
    ("over a top-level domain alone", "https://*.com", False),
    ("over an IP address", "https://*.0.0.1", False),
    ("a wildcard inside a label", "https://*app.example.com", False),
    ("a wildcard further right", "https://app.*.com", False),
    ("two wildcards", "https://*.*.example.com", False),
    ("no scheme", "*.example.com", False),
    ("another scheme", "ftp://*.example.com", False),
    ("a path", "https://*.example.com/", False),
    ("a port out of range", "https://*.example.com:70000", False),
    ("a raw IDN", "https://*.bücher.example", False),
    ("an empty label", "https://*..example.com", False),
]


@pytest.mark.parametrize(("pattern", "valid"), [p[1:] for p in PATTERNS], ids=[p[0] for p in PATTERNS])
def test_only_a_whole_left_most_label_over_a_real_host_is_a_pattern(pattern: str, valid: bool) -> None:
    assert (parse_origin_pattern(pattern) is not None) is valid
