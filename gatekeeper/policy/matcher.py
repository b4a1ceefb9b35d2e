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
from gatekeeper.policy.query import Reading

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


class MissingAttribute(MissingClaim):
    """``r.obj.NAME`` the request does not have, or one frameworks could read differently
    (attributes.py, query.py): the rule fails, as for a missing claim."""


# The hidden request field holding the values of the model's object attributes (attributes.py);
# a name no model field can have (those are r_*/p_*), and one a matcher may not write.
ATTRIBUTES = "_attrs"


def field_value(value: Any, name: str) -> Any:
    """``r.claims.tenant``: a mapping's entry; raises MissingClaim when there is none."""
    if isinstance(value, Mapping) and name in value:
        return value[name]
    raise MissingClaim(name)


def attribute_value(values: Sequence[Any], index: int, name: str) -> Any:
    """``r.obj.Owner``: the request's value; raises MissingAttribute when it has none."""
    value = values[index] if index < len(values) else None
    if value is None or isinstance(value, Reading):
        raise MissingAttribute(name)
    return value


def _no_rule_expressions(*_: Any) -> Any:
    raise LookupError("no rule expressions were compiled")  # expressions.py binds the real one


# Attribute names simpleeval (and so Casbin) resolves to a method of the value rather than a
# claim (``r.claims.items`` is dict.items there): refused, so that the two never differ.
_METHOD_NAMES = frozenset(n for kind in (dict, list, str, int, float, bool) for n in dir(kind))


class _Attributes(ast.NodeTransformer):
    """``r_obj.Owner`` → the declared attribute's value, ``r_claims.a.b`` → ``_field`` reads,
    ``eval(p_rule)`` → the rule's compiled expression called with the request fields."""

    def __init__(self, attributes: Sequence[str] = (), request: Sequence[str] = (),
                 obj: str = "r_obj") -> None:
        self._attributes = list(attributes)
        self._request = request
        self._obj = obj  # the request field fed by the path

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if (isinstance(node.value, ast.Name) and node.value.id == self._obj
                and node.attr in self._attributes):
            index = self._attributes.index(node.attr)
            return ast.copy_location(ast.Call(
                func=ast.Name(id="_attr", ctx=ast.Load()),
                args=[ast.Name(id=ATTRIBUTES, ctx=ast.Load()), ast.Constant(index),
                      ast.Constant(node.attr)], keywords=[]), node)
        value = self.visit(node.value)
        return ast.copy_location(
            ast.Call(func=ast.Name(id="_field", ctx=ast.Load()),
                     args=[value, ast.Constant(node.attr)], keywords=[]), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id == "eval" and node.args:
            return ast.copy_location(ast.Call(
                func=ast.Name(id="_eval", ctx=ast.Load()),
                args=[node.args[0], *(ast.Name(id=f, ctx=ast.Load()) for f in self._request)],
                keywords=[]), node)
        self.generic_visit(node)
        return node


def casbin_to_python(matcher: str) -> str:
    text = matcher.replace("&&", " and ").replace("||", " or ")
    return re.sub(r"!(?!=)", " not ", text)


def _as_written(node: ast.AST) -> str:
    """``r.obj.Owner`` as the model spells it (casbin turned it into ``r_obj.Owner``)."""
    return re.sub(r"\b([rp][0-9]*)_", r"\1.", ast.unparse(node))


_ATTRIBUTE_HELP = {
    "path": "r.obj is the path: declare the request's attributes in the model's "
            "[object_attributes] section ('query NAME', 'path /…/:NAME', 'method')",
    "subject": "r.sub is the caller's subject, a string; the subject's attributes are the "
               "token's claims: list claims in the request definition and write r.claims.{}",
}


def attribute_help(base: str, subject: str = "r_sub", obj: str = "r_obj") -> str:
    """Why ``base.NAME`` is refused, for the subject's and the object's field (a ``{}`` for
    the name); any other field: only claims have attributes."""
    source = "subject" if base == subject else "path" if base == obj else ""
    return _ATTRIBUTE_HELP.get(source, "only the token's claims have attributes: r.claims.NAME")


def check_features(
    tree: ast.AST, role_functions: Collection[str], attributes: Collection[str] = (),
    where: str = "the matcher", subject: str = "r_sub", claims: str = "r_claims",
    obj: str = "r_obj",
) -> None:
    """Casbin matcher features the engine does not evaluate as Casbin does, refused by name.
    ``role_functions``: the role types, or a mapping of each to its arity (3 with a domain);
    ``attributes``: the declared object attributes (``r.obj.NAME``, attributes.py);
    ``where``: "the matcher", or "a rule" for a rule's expression (expressions.py);
    ``subject``/``claims``/``obj``: the request fields fed by the subject, claims and path."""
    arity = role_functions if isinstance(role_functions, Mapping) else {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise MatcherError(f"{where.removeprefix('the ')} uses an unknown name {node.id!r}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name == "eval" and (where != "the matcher" or node.keywords or len(node.args) != 1
                                   or not isinstance(node.args[0], ast.Name)
                                   or not node.args[0].id.startswith("p_")):
                raise MatcherError(unsupported(
                    f"eval() in {where} of anything but a rule field",
                    "eval(p.NAME) evaluates the expression each policy line holds in NAME"))
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
            if (isinstance(node.value, ast.Name) and node.value.id == obj
                    and node.attr in attributes):
                continue
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            base_name = base.id if isinstance(base, ast.Name) else ""
            if base_name != claims:
                raise MatcherError(unsupported(f"attribute access {_as_written(node)!r}",
                                               attribute_help(base_name, subject, obj)
                                               .format(node.attr)))
            if node.attr.startswith("_") or node.attr in _METHOD_NAMES:
                raise MatcherError(unsupported(
                    f"the claim name {node.attr!r} in {where}",
                    "Casbin reads it as a method of the value, not as a claim"))


def matcher_problem(
    matcher: str, role_functions: Collection[str], subject: str = "r_sub",
    claims: str = "r_claims", *, attributes: Collection[str] = (), obj: str = "r_obj",
) -> str | None:
    """The first unsupported feature of the matcher, for the model's own checks (None if none)."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError:
        return None  # compile_matcher reports it, with the rest of the policy's problems
    try:
        check_features(tree, role_functions, attributes, "the matcher", subject, claims, obj)
    except MatcherError as exc:
        return str(exc)
    return None


def eval_fields(matcher: str) -> list[str]:
    """The rule fields the matcher passes to eval(), as ``p_NAME`` (none: an empty list)."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError:
        return []
    return [node.args[0].id for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "eval" and len(node.args) == 1
            and isinstance(node.args[0], ast.Name) and node.args[0].id.startswith("p_")]


def compile_matcher(
    matcher: str, fields: Sequence[str], functions: Mapping[str, Callable[..., Any]],
    role_functions: Collection[str] = (), subject: str = "r_sub", claims: str = "r_claims",
    *, attributes: Sequence[str] = (), obj: str = "r_obj",
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(function(*fields) -> result, its globals). Callers may rebind a function in globals.
    ``fields``: the request fields (``r_*``, then ``ATTRIBUTES``), then the rule's (``p_*``)."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError as exc:
        raise MatcherError(f"matcher is not a valid expression ({exc.msg})") from None
    check_features(tree, role_functions, attributes, "the matcher", subject, claims, obj)
    for node in ast.walk(tree):  # before r.obj.Owner is rewritten: a model without obj
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id not in fields):
            raise MatcherError(f"matcher uses an unknown name {node.value.id!r}")
    tree = _Attributes(attributes, [f for f in fields if not f.startswith("p_")], obj).visit(tree)
    known = set(fields) | set(functions) | _HELPERS
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise MatcherError(unsupported(f"{type(node).__name__} expressions in the matcher",
                                           "see the table for the operators it may use"))
        if isinstance(node, ast.Name) and node.id not in known:
            raise MatcherError(f"matcher uses an unknown name {node.id!r}")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in {*functions, *_HELPERS}
            or node.keywords
        ):
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise MatcherError(f"matcher calls {called!r}, which is not a matcher function "
                               "(custom functions are not supported; "
                               f"the functions are: {', '.join(sorted(functions))}; see {DOCS})")
    namespace: dict[str, Any] = {"__builtins__": {}, "_field": field_value,
                                 "_attr": attribute_value, "_eval": _no_rule_expressions,
                                 **functions}
    return compile_lambda(tree.body, fields, namespace, "<matcher>"), namespace


_HELPERS = frozenset({"_field", "_attr", "_eval"})


def compile_lambda(
    body: ast.expr, fields: Sequence[str], namespace: dict[str, Any], name: str,
) -> Callable[..., Any]:
    """``lambda *fields: body`` over a whitelisted tree, with ``namespace`` as its globals."""
    lambda_node = ast.Expression(body=ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=f) for f in fields], vararg=None,
                           kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=body))
    ast.fix_missing_locations(lambda_node)
    function: Callable[..., Any] = eval(compile(lambda_node, name, "eval"), namespace)  # noqa: S307 - whitelisted AST
    return function


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
                and node.func.id not in skip and node.func.id not in _HELPERS):
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
