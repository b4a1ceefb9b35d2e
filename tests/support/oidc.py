"""A real OpenID provider for tests: panva's ``oidc-provider`` (tests/oidc/provider.mjs) under node.

    with run_oidc_provider(redirect_uris=[gk_url + "/oauth2/callback"]) as op:
        op.issuer, op.client_id, op.client_secret, op.users["alice"].password
        with op.http_client() as browser:             # keeps the provider's cookies
            callback = login_with_http_client(browser, authorize_url, "alice", "alice-password")
            # callback == "<redirect_uri>?code=...&state=...&iss=..." (not requested)

The provider listens on 127.0.0.1, on a port of its own choosing unless ``port`` is given (e.g. to
bring it back on the same issuer URL). Its users, login form and client are described at the top of
tests/oidc/provider.mjs. Needs ``npm ci --prefix tests/oidc`` once (``make test`` does it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from tests.support.servers import ProcessHandle, run_process
from tests.support.tools import NODE, require, require_node_packages

__all__ = [
    "LoginError",
    "OidcProvider",
    "OidcUser",
    "code_flow_tokens",
    "login_with_http_client",
    "logout_with_http_client",
    "run_oidc_provider",
]

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
READY_PREFIX = '{"ready":true'


@dataclass(frozen=True)
class OidcUser:
    username: str
    password: str
    sub: str
    email: str
    roles: tuple[str, ...]


@dataclass
class OidcProvider:
    issuer: str
    port: int
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    users: dict[str, OidcUser]
    process: ProcessHandle

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """A client for the test's own requests; it keeps cookies, like a browser would."""
        kwargs.setdefault("timeout", 10)
        return httpx.Client(trust_env=False, **kwargs)

    def discovery(self) -> dict[str, Any]:
        with self.http_client() as client:
            response = client.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            return document


@contextlib.contextmanager
def run_oidc_provider(
    *,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
    access_token_ttl: int = 300,
    backchannel_logout_uri: str | None = None,
    port: int = 0,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 15.0,
) -> Iterator[OidcProvider]:
    """Start tests/oidc/provider.mjs; yield once it serves; stop it on exit.

    ``env`` adds or overrides the provider's ``OIDC_*`` settings (see the top of provider.mjs),
    e.g. ``{"OIDC_ID_TOKEN_ALG": "ES256"}`` or ``{"OIDC_JWT_ACCESS_TOKEN_AUDIENCE": "api"}``.
    """
    node = require(NODE)  # Node.js 18 or later
    require_node_packages(OIDC_DIR, "oidc-provider")
    settings: dict[str, str | None] = {
        "OIDC_REDIRECT_URIS": json.dumps(list(redirect_uris)),
        "OIDC_POST_LOGOUT_REDIRECT_URIS": json.dumps(list(post_logout_redirect_uris)),
        "OIDC_ACCESS_TOKEN_TTL": str(access_token_ttl),
        "OIDC_BACKCHANNEL_LOGOUT_URI": backchannel_logout_uri,
    }
    settings.update(env or {})
    with run_process([node, str(PROVIDER_SCRIPT), str(port)], env=settings, cwd=OIDC_DIR) as handle:
        ready = _wait_for_ready_line(handle, timeout)
        yield OidcProvider(
            issuer=ready["issuer"],
            port=ready["port"],
            client_id=ready["client_id"],
            client_secret=ready["client_secret"],
            redirect_uris=ready["redirect_uris"],
            post_logout_redirect_uris=ready["post_logout_redirect_uris"],
            users={
                user["username"]: OidcUser(
                    username=user["username"], password=user["password"], sub=user["sub"],
                    email=user["email"], roles=tuple(user["roles"]),
                )
                for user in ready["users"]
            },
            process=handle,
        )


def _wait_for_ready_line(handle: ProcessHandle, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        output = handle.output()
        for line in output.splitlines(keepends=True):
            if line.startswith(READY_PREFIX) and line.endswith("\n"):
                ready: dict[str, Any] = json.loads(line)
                return ready
        if handle.returncode is not None:
            raise RuntimeError(f"the OpenID provider exited with {handle.returncode}:\n{output}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the OpenID provider was not ready after {timeout} s:\n{output}")
        time.sleep(0.02)


# --- driving the provider's pages with plain HTTP ------------------------------------------------


class LoginError(Exception):
    """The provider's pages did not lead back to the client (bad password, error page, no form)."""


def login_with_http_client(
    client: httpx.Client, authorize_url: str, username: str, password: str, *, max_steps: int = 10
) -> str:
    """Follow the provider's login and consent forms from ``authorize_url``, as a browser would.

    Returns the first redirect that leaves the provider's origin, not requested: the client's
    redirect_uri with ``code`` and ``state`` (or ``error``). ``client`` keeps the provider's cookies,
    so a second call with the same client skips the forms (the provider remembers the session).
    Raises ``LoginError`` with the provider's message on a refused login or an error page.
    """
    fields = {"username": username, "password": password}
    return _walk(client, authorize_url, fields, max_steps=max_steps, page_ends_walk=False)


def logout_with_http_client(client: httpx.Client, end_session_url: str, *, max_steps: int = 10) -> str:
    """Confirm the provider's RP-initiated logout form; return where it sends the user.

    That is the post_logout_redirect_uri (with ``state``), not requested, or the URL of the
    provider's "signed out" page when none was given.
    """
    return _walk(client, end_session_url, {}, max_steps=max_steps, page_ends_walk=True)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _walk(
    client: httpx.Client, start_url: str, fields: Mapping[str, str], *, max_steps: int, page_ends_walk: bool
) -> str:
    provider = _origin(start_url)
    method, url, data = "GET", start_url, None
    for _ in range(max_steps):
        response = client.request(method, url, data=data, follow_redirects=False)
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != provider:
                return target
            method, url, data = "GET", target, None
            continue
        page = _Page.parse(response.text)
        if page.alerts:
            raise LoginError(f"{response.status_code} at {response.url}: {' / '.join(page.alerts)}")
        if response.status_code != 200:
            raise LoginError(f"{response.status_code} at {response.url}:\n{response.text[:2000]}")
        if not page.forms:
            if page_ends_walk:
                return str(response.url)
            raise LoginError(f"no form at {response.url}:\n{response.text[:2000]}")
        form = page.forms[0]
        values = {**form.values, **{name: value for name, value in fields.items() if name in form.values}}
        method = form.method
        url = urljoin(str(response.url), form.action or str(response.url))
        data = values
        if method == "GET":
            url = str(httpx.URL(url, params=values))
            data = None
    raise LoginError(f"still at the provider after {max_steps} steps (last: {url})")


@dataclass
class _Form:
    action: str
    method: str
    values: dict[str, str]
    submitted_by: bool = False  # the first submit button's name/value is in values


class _Page(HTMLParser):
    """Forms (their fields with default values) and role="alert" texts of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.alerts: list[str] = []
        self._form: _Form | None = None
        self._alert: list[str] | None = None
        self._alert_tag = ""
        self._alert_depth = 0

    @classmethod
    def parse(cls, html: str) -> _Page:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if self._alert is not None and tag == self._alert_tag:
            self._alert_depth += 1
        elif attr.get("role") == "alert" and self._alert is None:
            self._alert, self._alert_tag, self._alert_depth = [], tag, 1
        if tag == "form":
            method = attr.get("method", "get").upper()
            self._form = _Form(action=attr.get("action", ""), method=method, values={})
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and "name" in attr:
            kind = attr.get("type", "text").lower()
            if kind in {"submit", "image", "button", "reset", "file"}:
                self._submit_button(kind, attr)
            elif kind not in {"checkbox", "radio"} or "checked" in attr:
                self._form.values[attr["name"]] = attr.get("value", "")
        elif self._form is not None and tag == "button":
            self._submit_button(attr.get("type", "submit").lower(), attr)

    def _submit_button(self, kind: str, attr: dict[str, str]) -> None:
        # A click on the first submit button sends its name=value along, as a browser does.
        assert self._form is not None
        if kind == "submit" and not self._form.submitted_by:
            self._form.submitted_by = True
            if attr.get("name"):
                self._form.values[attr["name"]] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if self._alert is not None and tag == self._alert_tag:
            self._alert_depth -= 1
            if self._alert_depth == 0:
                self.alerts.append(" ".join("".join(self._alert).split()))
                self._alert = None

    def handle_data(self, data: str) -> None:
        if self._alert is not None:
            self._alert.append(data)


def cancel_at_provider(client: httpx.Client, authorize_url: str) -> str:
    """Press the dev provider's Cancel button; return where it sends the browser."""
    form = client.get(authorize_url)
    assert form.status_code == 200 and 'value="cancel"' in form.text
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.text))
    answer = client.post(urljoin(authorize_url, "authorize"),
                         data={**{k: html.unescape(v) for k, v in carried.items()}, "action": "cancel"})
    assert answer.status_code == 302
    return answer.headers["location"]


def code_flow_tokens(op: OidcProvider, username: str, redirect_uri: str,
                     scope: str = "openid profile email",
                     client_form: Callable[[], dict[str, str]] | None = None) -> dict[str, Any]:
    """A fresh login of ``username`` by the authorization code flow with PKCE, as the provider's
    client: the token endpoint's answer. ``redirect_uri`` (one of the client's) is never followed:
    the code is read off the redirect. The client authenticates with its secret (Basic), or with
    the form fields ``client_form`` gives (e.g. a private_key_jwt assertion)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    discovery = op.discovery()
    params = {"response_type": "code", "client_id": op.client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": secrets.token_urlsafe(8),
              "code_challenge": challenge.decode(), "code_challenge_method": "S256"}
    user = op.users[username]
    with op.http_client() as browser:
        back = login_with_http_client(browser, f"{discovery['authorization_endpoint']}?"
                                      f"{urlencode(params)}", user.username, user.password)
    code = parse_qs(urlsplit(back).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    with op.http_client() as backend:
        if client_form is not None:
            fetched = backend.post(discovery["token_endpoint"], data={**form, **client_form()})
        else:
            fetched = backend.post(discovery["token_endpoint"],
                                   auth=(op.client_id, op.client_secret), data=form)
        answer: dict[str, Any] = fetched.raise_for_status().json()
    return answer
