"""The dev issuer's login side over HTTP: the routes of login.py's DevLogin and its HTML pages.

See login.py for what each route does; this module only turns requests into DevLogin calls
and answers into responses (JSON, redirects, the login form).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gatekeeper.dev.login import SESSION_COOKIE, DevLogin
from gatekeeper.dev.login_values import AuthRequest, LoginSession
from gatekeeper.dev.oauth import NO_STORE, OAuthError, parse_params, with_query


async def _request_params(request: Request) -> dict[str, str]:
    if request.method == "POST":
        return parse_params((await request.body()).decode("utf-8", "replace"))
    return parse_params(request.url.query)



# -- HTTP -------------------------------------------------------------------------------------


def login_routes(login: DevLogin) -> list[Route]:
    async def authorize(request: Request) -> Response:
        try:
            params = await _request_params(request)
            _, redirect_uri = login.authorization_target(params)
        except OAuthError as exc:
            return _page("Error", f'<p role="alert">{html.escape(exc.description)}</p>', status=400)
        try:
            auth = login.authorization_request(params)
        except OAuthError as exc:
            return _redirect_error(login, redirect_uri, params.get("state"), exc)
        if request.method == "POST":
            return _submit_login(login, auth, params)
        return _start_login(login, auth, params, request.cookies.get(SESSION_COOKIE))

    async def token(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").partition(";")[0].strip().lower() != (
                "application/x-www-form-urlencoded"
            ):
                raise OAuthError("invalid_request", "Send the request form-encoded.")
            form = await _request_params(request)
            body = login.token(request.headers.get("authorization"), form)
        except OAuthError as exc:
            headers = dict(NO_STORE)
            if exc.status == 401:  # RFC 6749 §5.2
                headers["WWW-Authenticate"] = 'Basic realm="devissuer"'
            error = {"error": exc.error, "error_description": exc.description}
            return JSONResponse(error, status_code=exc.status, headers=headers)
        return JSONResponse(body, headers=NO_STORE)

    async def userinfo(request: Request) -> Response:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not access_token.strip():
            # RFC 6750 §3.1: no error code when the request carried no token.
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="devissuer"'})
        try:
            return JSONResponse(login.userinfo(access_token.strip()), headers=NO_STORE)
        except OAuthError as exc:
            challenge = f'Bearer error="{exc.error}", error_description="{exc.description}"'
            return Response(status_code=401, headers={"WWW-Authenticate": challenge})

    async def logout(request: Request) -> Response:
        try:
            target = login.logout(await _request_params(request), request.cookies.get(SESSION_COOKIE))
        except OAuthError as exc:
            return _page("Error", f'<p role="alert">{html.escape(exc.description)}</p>', status=400)
        response = _page("Signed out", "<p>You are signed out.</p>") if target is None else _redirect(target)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return [
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["GET", "POST"]),
    ]


def _start_login(
    login: DevLogin, auth: AuthRequest, params: Mapping[str, str], cookie: str | None
) -> Response:
    prompt = params.get("prompt", "").split()
    session = login.session(cookie)
    if session is not None and "login" not in prompt:
        return _redirect_code(login, auth, session)
    if "none" in prompt:  # OIDC Core §3.1.2.6: no page may be shown
        required = OAuthError("login_required", "Not logged in.")
        return _redirect_error(login, auth.redirect_uri, auth.state, required)
    return _login_page(login, params, username=params.get("login_hint", ""))


def _submit_login(login: DevLogin, auth: AuthRequest, params: Mapping[str, str]) -> Response:
    if params.get("action") == "cancel":
        denied = OAuthError("access_denied", "The user cancelled the login.")
        return _redirect_error(login, auth.redirect_uri, auth.state, denied)
    username = params.get("username", "")
    logged_in = login.log_in(username, params.get("password", ""))
    if logged_in is None:
        return _login_page(login, params, username=username, error="Invalid username or password.")
    cookie, session = logged_in
    response = _redirect_code(login, auth, session)
    response.set_cookie(SESSION_COOKIE, cookie, path="/", httponly=True, samesite="lax")
    return response


def _redirect_code(login: DevLogin, auth: AuthRequest, session: LoginSession) -> Response:
    code = login.issue_code(auth, session)
    # RFC 9207: iss tells the client which provider answered, against mix-up attacks.
    params = {"code": code, "state": auth.state, "iss": login.issuer.issuer}
    return _redirect(with_query(auth.redirect_uri, params))


def _redirect_error(login: DevLogin, redirect_uri: str, state: str | None, exc: OAuthError) -> Response:
    params = {"error": exc.error, "error_description": exc.description, "state": state,
              "iss": login.issuer.issuer}
    return _redirect(with_query(redirect_uri, params))


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


# The request rides along in hidden fields, so the POST is checked like the GET was.
_CARRIED = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
            "code_challenge", "code_challenge_method")
_STYLE = ("body{font-family:sans-serif;max-width:24em;margin:3em auto}"
          "label,input,button{display:block;width:100%;margin:.3em 0}[role=alert]{color:#b00}")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


def _login_page(
    login: DevLogin, params: Mapping[str, str], *, username: str, error: str | None = None
) -> Response:
    e = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{e(params[name])}">'
        for name in _CARRIED
        if name in params
    )
    hint = "".join(f"<li><code>{e(u.username)}</code> / <code>{e(u.password)}</code></li>"
                   for u in login.users.values())
    body = (
        (f'<p role="alert">{e(error)}</p>' if error else "")
        + f"<p>to continue to <b>{e(params['client_id'])}</b></p>"
        # Relative action: it posts back to this same /authorize whatever prefix the issuer has.
        + f'<form method="post" action="authorize">{hidden}'
        + '<label>Username <input name="username" autocomplete="username" required autofocus'
        + f' value="{e(username)}"></label><label>Password <input name="password" type="password"'
        + ' autocomplete="current-password" required></label>'
        # The first submit button is what Enter (and tests/support/oidc.py) presses.
        + '<button type="submit" name="action" value="login">Sign in</button>'
        + '<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></form>'
        + f"<p>Demo users (username / password):</p><ul>{hint}</ul>"
    )
    return _page("Sign in", body)


def _page(title: str, body: str, *, status: int = 200) -> Response:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_PAGE_HEADERS)
