"""``gatekeeper policy explain``: why one request is allowed or denied.

    gatekeeper policy explain --config FILE --sub dana --role editor GET /admin/users
    gatekeeper policy explain --config FILE --anonymous --json GET /public/logo.png

The request is built as ``policy test`` builds it (the proxy's principal: roles also from
``auth.roles_claims``, the issuer's subject prefix with ``--iss``), and explained by
``gatekeeper.policy.explain`` over the loaded policy and ``public_paths``. Exit codes as
``policy test``: 0 allow, 1 deny, 2 usage, configuration, or a target the proxy refuses (400).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from gatekeeper.cli.policy import (
    ALLOW,
    DENY,
    USAGE,
    CaseRequest,
    Decider,
    UsageError,
    _print_warnings,
    _settings,
    _validation_lines,
    parse_claims,
)
from gatekeeper.policy.explain import ExplainRequest, Explanation, explain
from gatekeeper.policy.loader import PolicyError, load_policy


def policy_explain(
    config_path: str | None, *, sub: str | None, iss: str | None, roles: Sequence[str],
    claims: Sequence[str], anonymous: bool, method: str | None, path: str | None, as_json: bool,
    host: str = "localhost", client: str = "127.0.0.1",
) -> int:
    try:
        if method is None or path is None:
            raise UsageError(["give METHOD PATH (e.g. GET /admin/users)"])
        try:
            case = CaseRequest(sub=sub, iss=iss, roles=list(roles), claims=parse_claims(claims),
                               anonymous=anonymous, method=method, path=path, host=host,
                               client=client)
        except ValidationError as exc:
            raise UsageError(_validation_lines(exc, "")) from None
        settings, files = _settings(config_path)
        try:
            report = load_policy(files.model, files.policy, cache_size=0, settings=files)
        except PolicyError as exc:
            raise UsageError(["the policy cannot be loaded (details: gatekeeper policy check):",
                              *exc.problems]) from exc
        _print_warnings(report.warnings)
        decider = Decider(report.policy, public_paths=settings.public_paths,
                          roles_claims=settings.auth.roles_claims,
                          subject_prefixes=settings.subject_prefixes())
        request = ExplainRequest.from_principal(decider.principal(case), case.method, case.path,
                                                host=case.host, client=case.client)
    except UsageError as exc:
        for line in exc.lines:
            print(f"gatekeeper: {line}", file=sys.stderr)
        return USAGE
    result = explain(report.policy, request, public_paths=settings.public_paths,
                     policy_file=files.policy)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(render(result))
    if result.reason in ("malformed_target", "bad_request"):
        return USAGE
    return ALLOW if result.allowed else DENY


def render(result: Explanation) -> str:
    """The explanation for a terminal: the verdict first, then why."""
    lines = ["allow" if result.allowed else "deny",
             f"  reason:   {result.reason}",
             f"  request:  {result.method} {result.path}",
             f"  decided:  {result.decided_by or 'no rule (' + _no_rule(result) + ')'}",
             f"  effect:   {result.effect}",
             f"            {result.effect_meaning}",
             f"  matcher:  {' && '.join(result.terms)}"]
    lines += [f"  note:     {note}" for note in result.notes]
    if result.subjects:
        lines.append("  subjects (what the caller holds, and where it comes from):")
        width = max(len(s.name) for s in result.subjects)
        for subject in result.subjects:
            chain = f"  ({' -> '.join(subject.chain)})" if len(subject.chain) > 1 else ""
            lines.append(f"    {subject.name:<{width}}  {subject.via}{chain}")
    if result.subjects or result.matched:
        lines.append("  matched rules:" if result.matched else "  matched rules: none")
        for match in result.matched:
            mark = "  <- decided" if match.rule == result.decided_by else ""
            lines.append(f"    {match.rule}  {match.text}{mark}")
    if result.nearest:
        lines.append("  nearest rules that did not match (the first term that failed):")
        for miss in result.nearest:
            seen = ", ".join(f"{name} = {value!r}" for name, value in miss.values)
            lines.append(f"    {miss.rule}  {miss.text}")
            lines.append(f"        {miss.term} -> {miss.result}{f'  ({seen})' if seen else ''}")
    return "\n".join(lines)


def _no_rule(result: Explanation) -> str:
    if result.reason == "no_credentials":
        return "the policy is not read for an anonymous caller off public_paths: 401"
    if result.reason == "no_matching_rule":
        return "no allow rule matched: default deny"
    return result.reason
