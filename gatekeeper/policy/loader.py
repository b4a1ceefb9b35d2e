"""Model + policy files → a validated CompiledPolicy, or every problem with its file and line.

Runs off the event loop (it reads files and builds indexes). Nothing here is partially applied:
a file with any problem produces no policy at all, so the caller keeps the one it has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casbin.model import Model
from casbin.persist.adapter import _extract_tokens

from gatekeeper.paths import PCHAR
from gatekeeper.policy.attributes import ObjectAttributes, parse_object_attributes
from gatekeeper.policy.engine import ANONYMOUS_SUBJECT, CompiledPolicy, ModelError, Rule
from gatekeeper.policy.expressions import RuleExpressionError
from gatekeeper.policy.features import model_problems, unsupported
from gatekeeper.policy.functions import matcher_functions
from gatekeeper.policy.index import plan_index
from gatekeeper.policy.inputs import RequestShapeError, request_sources
from gatekeeper.policy.lint import lint_roles_and_denies, lint_rules
from gatekeeper.policy.matcher import MatcherError, eval_fields, matcher_problem
from gatekeeper.policy.namespace import role_namespace_warnings
from gatekeeper.policy.roles import RoleLinks
from gatekeeper.settings.routes import PolicySettings

_DEFAULTS = PolicySettings()


class PolicyError(Exception):
    """The files cannot become a policy; ``problems`` are 'file:line: reason' strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class LoadReport:
    policy: CompiledPolicy
    warnings: list[str] = field(default_factory=list)  # lint: duplicates, unreachable rules


def _digest(model_text: str, policy_text: str) -> str:
    return hashlib.sha256(model_text.encode() + b"\0" + policy_text.encode()).hexdigest()[:16]


def files_digest(model_path: Path, policy_path: Path) -> str:
    """The digest ``load_policy`` would give these files now, without compiling them."""
    return _digest(_read(model_path), _read(policy_path, newline=""))


def load_policy(
    model_path: Path,
    policy_path: Path,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    cache_size: int = 65536,
    settings: PolicySettings | None = None,
) -> LoadReport:
    """``settings``: the ``policy:`` section beyond the two files (the domain source, what feeds
    the request fields, role and domain matching functions); its defaults when None."""
    options = settings or _DEFAULTS
    functions = functions or matcher_functions()
    model_text = _read(model_path)
    policy_text = _read(policy_path, newline="")
    digest = _digest(model_text, policy_text)
    model, attributes = _parse_model(model_path, model_text, options)
    rules, g_lines, warnings = _parse_policy(policy_path, policy_text, model, options)
    role_links = {
        key: RoleLinks([values for k, values, _ in g_lines if k == key],
                       matching=functions[options.role_matching[key]]
                       if key in options.role_matching else None,
                       domain_matching=functions[options.domain_matching]
                       if key == "g" and options.domain_matching else None)
        for key in (model["g"] if "g" in model.keys() else ())}  # noqa: SIM118 - casbin Model has no __contains__
    try:
        compiled = CompiledPolicy(model, role_links, rules, functions, digest=digest,
                                  cache_size=cache_size, request_fields=options.request,
                                  domain=options.domain, attributes=attributes)
    except RuleExpressionError as exc:  # eval(p.rule): the lines whose text is refused
        raise PolicyError(exc.problems) from exc
    except MatcherError as exc:
        raise PolicyError([f"{_line_of(model_path, model_text, 'matchers', 'm')}: {exc}"]) from exc
    except ModelError as exc:  # the effect, the rules' priorities, the domain source
        where = exc.where or _line_of(model_path, model_text, "policy_effect", "e")
        raise PolicyError([f"{where}: {exc}"]) from exc
    _dry_run(compiled, model_path)
    warnings.extend(role_namespace_warnings(rules, g_lines, model["p"]["p"].tokens))
    if not compiled.indexed:
        warnings.append(f"{model_path}: the matcher does not tie the request's subject to a "
                        "rule field (g(r.sub, p.sub) or r.sub == p.sub): every rule is evaluated "
                        "per decision, so its cost grows with the policy")
    return LoadReport(compiled, warnings)


def _read(path: Path, newline: str | None = None) -> str:
    """As Casbin reads each file: the model in text mode (a lone "\r" ends a line), the policy
    in binary (newline="": no line end but "\n", and a lone "\r" stays inside its line)."""
    try:
        with path.open(encoding="utf-8", newline=newline) as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path}: cannot read ({exc})"]) from exc


def _parse_model(path: Path, text: str, options: PolicySettings
                 ) -> tuple[Model, ObjectAttributes]:
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # pycasbin raises bare Exceptions for malformed files
        raise PolicyError([f"{path}: {exc}"]) from exc
    problems = [f"{path}: missing section [{name}]" for key, name in (
        ("r", "request_definition"), ("p", "policy_definition"), ("e", "policy_effect"),
        ("m", "matchers")) if key not in model.keys()]  # noqa: SIM118 - casbin Model has no __contains__
    if problems:
        raise PolicyError(problems)
    problems = model_problems(path, text, model)
    attributes, attribute_problems = parse_object_attributes(path, text)
    problems += attribute_problems
    roles = ({key: len(model["g"][key].tokens) for key in model["g"]}
             if "g" in model.keys() else {})  # noqa: SIM118 - casbin Model has no __contains__
    r_line = _line_of(path, text, "request_definition", "r")
    fields = [t.removeprefix("r_") for t in model["r"]["r"].tokens]
    try:
        sources = request_sources(fields, options.request)
    except RequestShapeError as exc:
        problems.append(f"{r_line}: {exc}")
        sources = ()

    def fed_by(source: str) -> str | None:
        return next((f"r_{f}" for f, s in zip(fields, sources, strict=False) if s == source), None)

    matcher = model["m"]["m"].value
    in_matcher = matcher_problem(matcher, roles, fed_by("subject") or "r_sub",
                                 fed_by("claims") or "r_claims", attributes=attributes.names,
                                 obj=fed_by("path") or "r_obj")
    if in_matcher:
        problems.append(f"{_line_of(path, text, 'matchers', 'm')}: {in_matcher}")
    if fed_by("domain") and options.domain is None:
        problems.append(f"{r_line}: the request field {fed_by('domain')[2:]} is the request's "  # type: ignore[index]
                        "domain (tenant): set policy.domain (claim, path_segment or host)")
    for key in options.role_matching:
        if key not in roles:
            problems.append(f"{path}: policy.role_matching names {key}, which the model does "
                            "not define")
    if options.domain_matching is not None and roles.get("g") != 3:
        problems.append(f"{path}: policy.domain_matching needs role domains (g = _, _, _)")
    p_tokens = tuple(model["p"]["p"].tokens)
    # A rule whose subject condition is an eval()'d expression (Casbin's abac_rule: p =
    # sub_rule, obj, act) names no subject field; any other rule must name one.
    if ("p_sub" not in p_tokens and not eval_fields(matcher) and plan_index(
            matcher, fed_by("subject"), fed_by("domain"), p_tokens).subject is None):
        problems.append(f"{_line_of(path, text, 'policy_definition', 'p')}: " + unsupported(
            "a policy_definition without a 'sub' field", "rules that name no subject"))
    if problems:
        raise PolicyError(problems)
    return model, attributes


def _parse_policy(
    path: Path, text: str, model: Model, options: PolicySettings
) -> tuple[list[Rule], list[tuple[str, list[str], str]], list[str]]:
    rules: list[Rule] = []
    g_lines: list[tuple[str, list[str], str]] = []
    problems: list[str] = []
    warnings: list[str] = []
    seen: dict[tuple[str, ...], str] = {}
    # Lines as Casbin's file adapter reads them: broken at "\n" only. str.splitlines() also
    # breaks at "\r", U+2028, U+0085…, where Casbin sees one line (a rule it cannot evaluate).
    for number, raw in enumerate(text.split("\n"), start=1):
        where = f"{path.name}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = _extract_tokens(line)
        except IndexError:
            problems.append(f"{where}: unbalanced brackets")
            continue
        if not tokens:
            continue
        key, values = tokens[0], tokens[1:]
        section = key[:1]
        if section not in ("p", "g") or section not in model.keys() or key not in model[section]:  # noqa: SIM118 - casbin Model has no __contains__
            problems.append(f"{where}: unknown rule type {key!r}")
            continue
        expected = len(model[section][key].tokens)
        if section == "g":
            expected = model[section][key].value.count("_")
        if len(values) != expected:
            problems.append(f"{where}: {key} takes {expected} fields, found {len(values)}")
            continue
        if any(v == "" for v in values):
            problems.append(f"{where}: empty field")
            continue
        problem = _field_problem(key, values, model, options)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if (key, *values) in seen:
            warnings.append(f"{where}: duplicate of {seen[(key, *values)]}")
            continue
        seen[(key, *values)] = where
        if section == "g":
            g_lines.append((key, values, where))
        else:
            rules.append(Rule(key, tuple(values), where))
    if problems:
        raise PolicyError(problems)
    warnings.extend(lint_rules(rules, model))
    warnings.extend(lint_roles_and_denies(rules, g_lines, model))
    return rules, g_lines, warnings


# A role name that reads as a pattern: Casbin compares role names exactly unless a matching
# function is registered in code, which a model file cannot do (Casbin's rbac_with_pattern).
_ROLE_PATTERN = re.compile(r"[*{}\[\]]|^\^|\$$|(?:^|/):")  # keyMatch*, globMatch, regexMatch


def _field_problem(key: str, values: list[str], model: Model, options: PolicySettings) -> str | None:
    """A line Casbin would read differently from what it says: a misspelled effect (Casbin
    compares 'allow'/'deny' exactly, so 'Deny' silently never denies), a role pattern where no
    matching function is configured (policy.role_matching, policy.domain_matching)."""
    if key.startswith("g"):
        names = [] if key in options.role_matching else values[:2]
        if options.domain_matching is None or key != "g":
            names += values[2:]
        looks = [v for v in names if _ROLE_PATTERN.search(v)]
        return (unsupported(f"the role pattern {looks[0]!r}",
                            "role names are compared exactly unless policy.role_matching (or "
                            "policy.domain_matching, for domains) names a matching function")
                if looks else None)
    tokens = model["p"]["p"].tokens
    if "p_obj" in tokens:
        problem = _non_canonical_escape(values[tokens.index("p_obj")])
        if problem:
            return problem
    if "p_eft" in tokens and values[tokens.index("p_eft")] not in ("allow", "deny"):
        return (f"effect {values[tokens.index('p_eft')]!r} is neither 'allow' nor 'deny' "
                "(Casbin compares it exactly: the rule would never decide)")
    return None


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _non_canonical_escape(pattern: str) -> str | None:
    """An escape no canonical path holds (gatekeeper/paths.py decodes every pchar and upper-cases
    the rest): the pattern could never match, and a deny written so would deny nothing."""
    for escape in _ESCAPE.finditer(pattern):
        value = int(escape.group(1), 16)
        if value in PCHAR or escape.group(1) != escape.group(1).upper():
            spelled = chr(value) if value in PCHAR else escape.group(0).upper()
            return (f"the path pattern {pattern!r} holds {escape.group(0)!r}, which a canonical "
                    f"path spells {spelled!r}: it would never match (docs/policies.md, "
                    "'The path the policy sees')")
    return None


def _line_of(path: Path, text: str, section: str, key: str) -> str:
    """``model.conf:31`` for the line defining ``key`` in ``[section]`` (the path alone if absent)."""
    current = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and line.partition("=")[0].strip() == key:
            return f"{path}:{number}"
    return str(path)


def _dry_run(policy: CompiledPolicy, model_path: Path) -> None:
    """Evaluate the matcher once against every rule: unknown names fail now, not per request."""
    problems = [f"{rule.source}: {problem}" for rule in policy.rules
                if (problem := policy.pattern_problem(rule)) is not None]
    if problems:
        raise PolicyError(problems)
    for rule in policy.rules or (None,):
        try:
            policy.try_rule(rule, ANONYMOUS_SUBJECT, "GET", "/")
        except ValueError:
            # A value the made-up request does not fit (ipMatch(r.sub, …) given "anonymous"):
            # such a rule fails the same way per request, where an allow does not apply.
            continue
        except Exception as exc:  # simpleeval and matcher functions raise anything
            where = rule.source if rule is not None else str(model_path)
            raise PolicyError([f"{where}: the matcher fails on this rule "
                               f"({type(exc).__name__}: {exc})"]) from exc
