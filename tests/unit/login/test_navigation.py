"""Is a request a browser navigation (a login redirect) or a script (a 401)?
gatekeeper/login/navigation.py."""

from __future__ import annotations

import pytest

from gatekeeper.login.navigation import accept_quality, is_navigation
from gatekeeper.request import RequestView


def request(method: str = "GET", headers: dict[str, str] | None = None,
            cookies: list[str] | None = None) -> RequestView:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw += [(b"cookie", value.encode("latin-1")) for value in cookies or []]
    return RequestView({"type": "http", "method": method, "path": "/", "headers": raw}, "/")


CHROME = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
          "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FIREFOX_OLD = "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"
SAFARI = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
IE11 = "text/html, application/xhtml+xml, image/jxr, */*"
NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}

NAVIGATIONS = [
    ("Chrome navigation", "GET", {"accept": CHROME, **NAVIGATE}),
    ("Chrome navigation without Sec-Fetch headers", "GET", {"accept": CHROME}),
    ("Firefox navigation", "GET", {"accept": FIREFOX, **NAVIGATE}),
    ("older Firefox navigation", "GET", {"accept": FIREFOX_OLD}),
    ("Safari navigation", "GET", {"accept": SAFARI, "sec-fetch-mode": "navigate"}),
    ("Internet Explorer 11 navigation", "GET", {"accept": IE11}),
    ("a HEAD navigation", "HEAD", {"accept": CHROME}),
    ("a lower-case method is upper-cased first", "get", {"accept": FIREFOX}),
    ("html listed before json at the same quality", "GET", {"accept": "text/html, application/json"}),
    ("html preferred by q-value even when json comes first", "GET",
     {"accept": "application/json;q=0.5, text/html"}),
    ("html beats json that only */* admits", "GET", {"accept": "text/html;q=0.9, */*;q=0.8"}),
    ("a q parameter with spaces and upper-case Q", "GET", {"accept": "application/json ; Q=0.2, text/html"}),
]
NOT_NAVIGATIONS = [
    ("fetch() default */*", "GET", {"accept": "*/*"}),
    ("no Accept header", "GET", {}),
    ("Accept: application/json", "GET", {"accept": "application/json"}),
    ("axios default", "GET", {"accept": "application/json, text/plain, */*"}),
    ("jQuery getJSON", "GET", {"accept": "application/json, text/javascript, */*; q=0.01"}),
    ("XMLHttpRequest flagged by X-Requested-With", "GET",
     {"accept": FIREFOX, "x-requested-with": "XMLHttpRequest"}),
    ("fetch() in cors mode with a browser Accept", "GET", {"accept": CHROME, "sec-fetch-mode": "cors"}),
    ("fetch() in same-origin mode", "GET", {"accept": CHROME, "sec-fetch-mode": "same-origin"}),
    ("no-cors subresource", "GET", {"accept": CHROME, "sec-fetch-mode": "no-cors"}),
    ("an image request", "GET",
     {"accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"}),
    ("a form POST from a browser", "POST", {"accept": CHROME, **NAVIGATE}),
    ("a PUT", "PUT", {"accept": FIREFOX}),
    ("html refused with q=0", "GET", {"accept": "text/html;q=0, */*"}),
    ("html refused with q=0.0 next to json", "GET", {"accept": "text/html;q=0.0, application/json"}),
    ("json listed first at the same quality", "GET", {"accept": "application/json, text/html"}),
    ("json preferred by q-value", "GET", {"accept": "text/html;q=0.5, application/json"}),
    ("only xhtml (no text/html)", "GET", {"accept": "application/xhtml+xml"}),
    ("a malformed q counts as 0", "GET", {"accept": "text/html;q=abc, application/json;q=0.1"}),
]


@pytest.mark.parametrize(("method", "headers"), [(m, h) for _, m, h in NAVIGATIONS],
                         ids=[name for name, _, _ in NAVIGATIONS])
def test_a_browser_navigation_is_recognised(method: str, headers: dict[str, str]) -> None:
    assert is_navigation(request(method, headers)) is True


@pytest.mark.parametrize(("method", "headers"), [(m, h) for _, m, h in NOT_NAVIGATIONS],
                         ids=[name for name, _, _ in NOT_NAVIGATIONS])
def test_scripts_and_non_get_requests_are_not_navigations(method: str, headers: dict[str, str]) -> None:
    assert is_navigation(request(method, headers)) is False


def test_an_upper_case_html_media_type_is_still_html() -> None:
    assert accept_quality(b"TEXT/HTML", b"text/html") == 1.0  # the parser itself folds case
    assert is_navigation(request("GET", {"accept": "TEXT/HTML,*/*;q=0.8"})) is True


@pytest.mark.parametrize(("accept", "media_type", "quality"), [
    (b"text/html", b"text/html", 1.0),
    (b"text/html;q=0.3", b"text/html", 0.3),
    (b"text/*;q=0.4, */*;q=0.1", b"text/html", 0.4),
    (b"*/*;q=0.2", b"application/json", 0.2),
    (b"text/html;q=0.7, text/*;q=0.9", b"text/html", 0.7),
    (b"text/html;level=1;q=0.6", b"text/html", 0.6),
    (b"image/png", b"text/html", 0.0),
    (b"text/html;q=x", b"text/html", 0.0),
    (b"text/html;q=0, text/html", b"text/html", 0.0),
], ids=["no q is 1", "an explicit q", "type/* when no exact entry", "*/* as the last resort",
        "the exact entry wins over a better type/*", "other parameters are ignored",
        "an unlisted type is 0", "an unparsable q is 0", "the first of a repeated type counts"])
def test_accept_quality(accept: bytes, media_type: bytes, quality: float) -> None:
    assert accept_quality(accept, media_type) == quality
