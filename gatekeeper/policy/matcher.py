"""Compile a Casbin matcher once into a Python function of the request and rule fields.

pycasbin re-walks the matcher's syntax tree with simpleeval for every rule of every decision
(~10 µs a rule). Here the matcher is translated the way Casbin does (``&&``, ``||``, ``!``),
checked against a whitelist of expression forms — comparisons, boolean logic, calls to the
known matcher functions, the ``r_*``/``p_*`` fields, literals, and attribute reads on a field
(``r.claims.tenant``) — and compiled to one Python function with no builtins. Anything else in
a model file is refused at load, with the reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from gatekeeper.policy.features import DOCS, unsupported

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Call, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, ast.BinOp, ast.Add,
    ast.IfExp,
)


class MatcherError(ValueError):
    pass


class MissingClaim(LookupError):
    """``r.claims.NAME`` of a token without that claim: Casbin's evaluator fails there too, so
    the rule is treated like any failing one (an allow does not apply, a deny does)."""


def field_value(value: Any, name: str) -> Any:
    """``r.claims.tenant``: a mapping's entry; raises MissingClaim when there is none."""
    if isinstance(value, Mapping) and name in value:
        return value[name]
    raise MissingClaim(name)


# Attribute names simpleeval (and so Casbin) resolves to a method of the value rather than a
# claim (``r.claims.items`` is dict.items there): refused, so that the two never differ.
_METHOD_NAMES = frozenset(n for kind in (dict, list, str, int, float, bool) for n in dir(kind))


class _Attributes(ast.NodeTransformer):
    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        value = self.visit(node.value)
        return ast.copy_location(
            ast.Call(func=ast.Name(id="_field", ctx=ast.Load()),
                     args=[value, ast.Constant(node.attr)], keywords=[]), node)


def casbin_to_python(matcher: str) -> str:
    text = matcher.replace("&&", " and ").replace("||", " or ")
    return re.sub(r"!(?!=)", " not ", text)


def _as_written(node: ast.AST) -> str:
    """``r.obj.Owner`` as the model spells it (casbin turned it into ``r_obj.Owner``)."""
    return re.sub(r"\b([rp][0-9]*)_", r"\1.", ast.unparse(node))


def _check_features(tree: ast.AST, role_functions: Collection[str], subject: str = "r_sub",
                    claims: str = "r_claims") -> None:
    """Casbin matcher features the engine does not evaluate as Casbin does, refused by name.
    ``role_functions``: the role types, or a mapping of each to its arity (3 with a domain);
    ``subject``/``claims``: the request fields fed by the subject and the claims."""
    arity = role_functions if isinstance(role_functions, Mapping) else {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "_field":
            raise MatcherError("matcher uses an unknown name '_field'")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name == "eval":
                raise MatcherError(unsupported(
                    "eval() in the matcher", "rules written as expressions in policy lines"))
            if name in role_functions and (len(node.args) != arity.get(name, 2) or node.keywords):
                raise MatcherError(unsupported(
                    f"{name}() with {len(node.args)} arguments",
                    f"{name} is defined with {arity.get(name, 2) - 2 or 'no'} domain: it takes "
                    f"a member and a role{', and the domain' if arity.get(name, 2) == 3 else ''}"))
            if name == "g" and name in role_functions and ast.unparse(node.args[0]) != subject:
                raise MatcherError(unsupported(
                    f"g({_as_written(node.args[0])}, …)",
                    f"the caller's token roles are links of {_as_written(ast.parse(subject))}: "
                    "g's first argument must be the subject; use g2 for roles of other things"))
        if isinstance(node, ast.Attribute):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if not (isinstance(base, ast.Name) and base.id == claims):
                raise MatcherError(unsupported(
                    f"attribute access {_as_written(node)!r}",
                    "only the token's claims have attributes: r.claims.NAME"))
            if node.attr.startswith("_") or node.attr in _METHOD_NAMES:
                raise MatcherError(unsupported(
                    f"the claim name {node.attr!r} in the matcher",
                    "Casbin reads it as a method of the value, not as a claim"))


def matcher_problem(matcher: str, role_functions: Collection[str], subject: str = "r_sub",
                    claims: str = "r_claims") -> str | None:
    """The first unsupported feature of the matcher, for the model's own checks (None if none)."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError:
        return None  # compile_matcher reports it, with the rest of the policy's problems
    try:
        _check_features(tree, role_functions, subject, claims)
    except MatcherError as exc:
        return str(exc)
    return None


def compile_matcher(
    matcher: str, fields: Sequence[str], functions: Mapping[str, Callable[..., Any]],
    role_functions: Collection[str] = (), subject: str = "r_sub", claims: str = "r_claims",
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(function(*fields) -> result, its globals). Callers may rebind a function in globals."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError as exc:
        raise MatcherError(f"matcher is not a valid expression ({exc.msg})") from None
    _check_features(tree, role_functions, subject, claims)
    tree = _Attributes().visit(tree)
    known = set(fields) | set(functions) | {"_field"}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise MatcherError(unsupported(f"{type(node).__name__} expressions in the matcher",
                                           "see the table for the operators it may use"))
        if isinstance(node, ast.Name) and node.id not in known:
            raise MatcherError(f"matcher uses an unknown name {node.id!r}")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in {*functions, "_field"}
            or node.keywords
        ):
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise MatcherError(f"matcher calls {called!r}, which is not a matcher function "
                               "(custom functions are not supported; "
                               f"the functions are: {', '.join(sorted(functions))}; see {DOCS})")
    lambda_node = ast.Expression(body=ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=f) for f in fields], vararg=None,
                           kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=tree.body))
    ast.fix_missing_locations(lambda_node)
    namespace: dict[str, Any] = {"__builtins__": {}, "_field": field_value, **functions}
    function = eval(compile(lambda_node, "<matcher>", "eval"), namespace)  # noqa: S307 - whitelisted AST
    return function, namespace


def compile_calls(
    matcher: str, fields: Sequence[str], namespace: dict[str, Any], skip: Collection[str],
) -> list[tuple[str, Callable[..., Any]]]:
    """Each call of a matcher function that reads a rule field, as its own function of the
    fields: the load-time check runs every one on every rule, where ``&&``/``||`` in the whole
    matcher may skip it for the made-up request and a real request would reach it."""
    tree = _Attributes().visit(ast.parse(casbin_to_python(matcher).strip(), mode="eval"))
    probes: list[tuple[str, Callable[..., Any]]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id not in skip and node.func.id != "_field"):
            continue
        if not any(isinstance(n, ast.Name) and n.id.startswith("p_") for n in ast.walk(node)):
            continue
        lambda_node = ast.Expression(body=ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=f) for f in fields],
                               vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                               defaults=[]),
            body=node))
        ast.fix_missing_locations(lambda_node)
        probes.append((node.func.id, eval(compile(lambda_node, "<matcher>", "eval"), namespace)))  # noqa: S307 - the AST compile_matcher whitelisted
    return probes
