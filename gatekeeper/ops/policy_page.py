"""The policy page on the admin listener: what is in force, what it decides, what it refused.

    GET /policy            HTML: the policy's digest and load time; a form to try a request; a
                           who-can-access matrix (recent routes by roles); the recent denies; the
                           reload history; the model and policy files with their line numbers
    GET /policy/explain    JSON: one request decided as the proxy decides it, and explained
        ?sub=alice&role=viewer&role=editor&claim=tenant=acme&method=GET&path=/api/1
        (``role`` may be comma-separated, ``claim`` one NAME=VALUE a line; ``anonymous=1`` for
        a caller without credentials)

Only trusted peers or holders of ``admin.token`` get here (ops/access.py guards every path
under /policy). Decisions go through the proxy's own ``PolicyAuthorizer`` over the holder's
active policy, on the event loop — the policy's evaluation is not thread-safe — in small steps
(one matrix row at a time), so a page view never holds up proxied requests for long.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gatekeeper.authz import PolicyAuthorizer, PublicPaths
from gatekeeper.errors import BadRequest
from gatekeeper.ops.policy_assets import CSP, JSON_CSP, SECURITY_HEADERS
from gatekeeper.ops.policy_html import Cell, Matrix, PageView, Source, render
from gatekeeper.ops.recent import Traffic
from gatekeeper.paths import canonical_path
from gatekeeper.policy.engine import CompiledPolicy, Rule
from gatekeeper.policy.explain import ExplainRequest, explain, made_up_request
from gatekeeper.policy.loader import PolicyError, files_digest
from gatekeeper.policy.reload import PolicyHolder
from gatekeeper.principal import ANONYMOUS, Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import HTTP_METHOD
from gatekeeper.subjects import ANONYMOUS_ROLE, AUTHENTICATED_ROLE, ROLE_PREFIX
from gatekeeper.tokens.claims import roles_from_claims

MAX_MATRIX_ROUTES = 40
MAX_MATRIX_ROLES = 24
MAX_SOURCE_LINES = 2000
MAX_TRIAL_ROLES = 64
MAX_TRIAL_CLAIMS = 64
MAX_TRIAL_TEXT = 8192
# An explanation evaluates the matcher on every rule (~4 µs each here), on the event loop: the
# policy's evaluation is not thread-safe. Past this many rules it would stall proxied requests
# for tens of milliseconds, so the page gives the decision and points at the CLI instead.
MAX_EXPLAINED_RULES = 5000
_HOST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
TRIAL_PARAMETERS = ("sub", "anonymous", "role", "claim", "method", "path", "host", "client")
# The matrix asks as a made-up user holding one role: a name no token gives (a role-like name
# would be refused as one, and a real user's rules would colour the role's column).
PROBE_SUBJECT = "gatekeeper-policy-page:probe"


@dataclass(frozen=True, slots=True)
class Trial:
    """One request to decide, as the form or the query gave it (already bounded)."""

    principal: Principal
    method: str  # upper-case
    path: str  # canonical
    raw_path: str
    host: str = "localhost"  # the Host header (a tenant by host)
    client: str = "127.0.0.1"  # the client address (ipMatch)

    def request(self) -> RequestView:
        return made_up_request(self.method, self.path, self.raw_path, host=self.host,
                               client=self.client)


class PolicyPage:
    def __init__(self, holder: PolicyHolder, traffic: Traffic, *, public_paths: Sequence[str],
                 roles_claims: Sequence[str]) -> None:
        self._holder = holder
        self._traffic = traffic
        self._public_paths = tuple(public_paths)
        self._public = PublicPaths(public_paths)
        self._authorizer = PolicyAuthorizer(holder, self._public)
        self._roles_claims = tuple(roles_claims)
        # One principal per role, kept: with a claims policy the principal is the decision
        # cache's key, and a new one per view would fill the cache with keys never asked again.
        self._probes: dict[str, Principal] = {}

    def routes(self) -> list[Route]:
        return [Route("/policy", self.page, methods=["GET", "HEAD"]),
                Route("/policy/explain", self.explain, methods=["GET"])]

    # -- GET /policy -------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        holder, policy = self._holder, self._holder.active
        model, rules_file, note = await self._sources(policy)
        view = PageView(
            digest=policy.digest if policy else None,
            rules=len(policy.rules) if policy else 0,
            loaded_at=holder.loaded_at,
            last_error=holder.last_error,
            pid=os.getpid(),
            model=model,
            policy=rules_file,
            sources_note=note,
            rule_lines=() if model is not None or policy is None else tuple(
                (rule.source, _rule_text(rule)) for rule in policy.rules[:MAX_SOURCE_LINES]),
            matrix=await self._matrix(policy),
            denies=tuple(self._traffic.denies.newest_first()),
            history=tuple(holder.history.newest_first()),
            public_paths=self._public_paths,
        )
        return HTMLResponse(render(view), headers={**SECURITY_HEADERS,
                                                   "content-security-policy": CSP})

    async def _sources(self, policy: CompiledPolicy | None
                       ) -> tuple[Source | None, Source | None, str | None]:
        """The model and policy files, shown only when they hold the policy in force."""
        if policy is None:
            return None, None, "No policy is loaded."
        model_path, policy_path = self._holder.model_path, self._holder.policy_path
        try:
            model_text, policy_text, digest = await asyncio.to_thread(
                _read_sources, model_path, policy_path)
        except (OSError, UnicodeDecodeError, PolicyError):
            return None, None, ("The policy files cannot be read now; the rules in force are "
                                "listed from memory.")
        if digest != policy.digest:
            return None, None, ("The files on disk are not the policy in force (a reload was "
                                "refused, or one is under way); the rules in force are listed "
                                "from memory.")
        return (_numbered(model_path.name, "model", model_text),
                _numbered(policy_path.name, "policy", policy_text), None)

    async def _matrix(self, policy: CompiledPolicy | None) -> Matrix:
        if policy is None:
            return Matrix((), ())
        seen = self._traffic.routes.newest_first()
        roles = matrix_roles(policy)
        shown_roles = roles[:MAX_MATRIX_ROLES]
        columns = ("anonymous", "authenticated", *shown_roles)
        callers = [ANONYMOUS, self._probe(None), *(self._probe(role) for role in shown_roles)]
        rows = []
        for method, path in seen[:MAX_MATRIX_ROUTES]:
            cells = []
            for caller in callers:
                verdict = self._authorizer.authorize(caller, method, path)
                cells.append(Cell(verdict.allowed, verdict.reason, verdict.rule))
            rows.append((method, path, tuple(cells)))
            await asyncio.sleep(0)  # let proxied requests in between rows
        return Matrix(columns, tuple(rows), more_roles=len(roles) - len(shown_roles),
                      more_routes=max(len(seen) - MAX_MATRIX_ROUTES, 0))

    def _probe(self, role: str | None) -> Principal:
        key = role or ""
        probe = self._probes.get(key)
        if probe is None:
            if len(self._probes) > 4 * MAX_MATRIX_ROLES:  # roles come and go with reloads
                self._probes.clear()
            probe = Principal(subject=PROBE_SUBJECT, roles=(role,) if role else (), claims={},
                              via="bearer")
            self._probes[key] = probe
        return probe

    # -- GET /policy/explain -------------------------------------------------------------
    async def explain(self, request: Request) -> Response:
        try:
            trial = self.trial(request.query_params.multi_items())
        except BadRequest as exc:
            return _json({"error": exc.code, "error_description": exc.description}, 400)
        return self.decide(trial)

    def trial(self, items: Sequence[tuple[str, str]]) -> Trial:
        """The request the query describes; BadRequest naming the parameter otherwise."""
        params: dict[str, list[str]] = {}
        for key, value in items:
            if len(value) > MAX_TRIAL_TEXT:
                raise BadRequest(f"{key}: at most {MAX_TRIAL_TEXT} characters")
            params.setdefault(key, []).append(value)
        unknown = sorted(set(params) - set(TRIAL_PARAMETERS))
        if unknown:
            raise BadRequest(f"{unknown[0][:40]}: not a parameter (these are: "
                             f"{', '.join(TRIAL_PARAMETERS)})")
        method = _one(params, "method", "GET").strip()
        if not HTTP_METHOD.fullmatch(method):
            raise BadRequest("method: not an HTTP method")
        raw_path = _one(params, "path", "/").strip()
        if not raw_path.startswith("/"):
            raise BadRequest("path: must start with '/'")
        try:
            path = canonical_path(raw_path.partition("?")[0].encode("utf-8"))
        except BadRequest as exc:
            raise BadRequest(f"path: the proxy answers such a target with 400 "
                             f"({exc.description})") from None
        host = _one(params, "host", "localhost").strip()
        if not _HOST.fullmatch(host):
            raise BadRequest("host: a host name or address, with an optional port")
        client = _one(params, "client", "127.0.0.1").strip()
        try:
            ipaddress.ip_address(client)
        except ValueError:
            raise BadRequest("client: an IP address") from None
        if _one(params, "anonymous", "").lower() in ("1", "true", "on", "yes"):
            return Trial(ANONYMOUS, method.upper(), path, raw_path, host, client)
        sub = _one(params, "sub", "").strip()
        if not sub:
            raise BadRequest("sub: give a subject, or anonymous=1")
        roles = [role.strip() for value in params.get("role", []) for role in value.split(",")]
        roles = [role for role in roles if role]
        if len(roles) > MAX_TRIAL_ROLES:
            raise BadRequest(f"role: at most {MAX_TRIAL_ROLES} roles")
        claims = _claims([line for value in params.get("claim", [])
                          for line in value.splitlines()])
        claims["sub"] = sub  # a token's sub claim is its subject
        all_roles = dict.fromkeys([*roles, *roles_from_claims(claims, self._roles_claims)])
        principal = Principal(subject=sub, roles=tuple(all_roles), claims=claims, via="bearer")
        return Trial(principal, method.upper(), path, raw_path, host, client)

    def decide(self, trial: Trial) -> Response:
        policy = self._holder.active
        if policy is None:
            return _json({"error": "no_policy", "error_description": "no policy is loaded"}, 503)
        principal = trial.principal
        verdict = self._authorizer.authorize(principal, trial.method, trial.path, trial.request())
        authenticated = principal.via != "anonymous"
        rule = _rule_at(policy, verdict.rule)
        body: dict[str, Any] = {
            "request": {"subject": principal.subject, "anonymous": not authenticated,
                        "roles": list(principal.roles),
                        "claims": {k: v for k, v in principal.claims.items() if k != "sub"},
                        "method": trial.method, "path": trial.path, "target": trial.raw_path,
                        "host": trial.host, "client": trial.client},
            "allowed": verdict.allowed,
            "reason": verdict.reason,
            "rule": verdict.rule,
            "rule_text": _rule_text(rule) if rule is not None else None,
            "subjects": sorted(policy.subjects(principal.subject, principal.roles, authenticated)),
            "digest": policy.digest,
            "explanation": None,
            "explanation_note": None,
        }
        if len(policy.rules) <= MAX_EXPLAINED_RULES:
            explanation = explain(policy, ExplainRequest.from_principal(
                principal, trial.method, trial.raw_path, host=trial.host, client=trial.client),
                public_paths=self._public,
                policy_file=self._holder.policy_path)
            body["explanation"] = explanation.as_json()
        else:
            body["explanation_note"] = (
                f"the policy has {len(policy.rules)} rules: an explanation evaluates every one "
                "and would hold up the proxy's requests here; run gatekeeper policy explain "
                "with the same files")
        return _json(body, 200)


def matrix_roles(policy: CompiledPolicy) -> list[str]:
    """The token roles the policy names (``role:NAME`` in a rule or a ``g`` line), as a token
    carries them (NAME), sorted; the built-in roles have their own columns."""
    names: set[str] = set()
    for rule in policy.rules:
        names.update(value for value in rule.values if value.startswith(ROLE_PREFIX))
    for name, roles in policy.role_links.items():
        names.update(role for role in (name, *roles) if role.startswith(ROLE_PREFIX))
    names -= {ANONYMOUS_ROLE, AUTHENTICATED_ROLE}
    return sorted(name.removeprefix(ROLE_PREFIX) for name in names)


def _one(params: Mapping[str, list[str]], key: str, default: str) -> str:
    values = params.get(key, [])
    if len(values) > 1:
        raise BadRequest(f"{key}: given more than once")
    return values[0] if values else default


def _claims(lines: Sequence[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for line in (line.strip() for line in lines):
        if not line:
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise BadRequest(f"claim: {line[:40]!r} is not NAME=VALUE")
        if len(claims) >= MAX_TRIAL_CLAIMS:
            raise BadRequest(f"claim: at most {MAX_TRIAL_CLAIMS} claims")
        value = value.strip()
        if value[:1] in ("[", "{"):
            try:
                claims[name.strip()] = json.loads(value)
            except ValueError:
                raise BadRequest(f"claim {name.strip()[:40]!r}: the value is not JSON") from None
        else:
            claims[name.strip()] = value
    return claims


def _rule_at(policy: CompiledPolicy, source: str | None) -> Rule | None:
    if source is None:
        return None
    return next((rule for rule in policy.rules if rule.source == source), None)


def _rule_text(rule: Rule) -> str:
    return f"{rule.ptype}, {', '.join(rule.values)}"


def _read_sources(model_path: Path, policy_path: Path) -> tuple[str, str, str]:
    """Both files as the loader reads them, and the digest of what is on disk (off the loop)."""
    model = model_path.read_text(encoding="utf-8")
    with policy_path.open(encoding="utf-8", newline="") as file:
        policy = file.read()
    return model, policy, files_digest(model_path, policy_path)


def _numbered(path: str, anchor: str, text: str) -> Source:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    shown = tuple(enumerate(lines[:MAX_SOURCE_LINES], start=1))
    return Source(path, anchor, shown, max(len(lines) - MAX_SOURCE_LINES, 0))


def _json(body: Mapping[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={**SECURITY_HEADERS, "content-security-policy": JSON_CSP})
