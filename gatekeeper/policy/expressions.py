"""Rules written as expressions: ``eval(p.sub_rule)``, each policy line's text compiled once.

Casbin's ``eval(p.sub_rule)`` pastes the rule's text into the matcher and evaluates the result
with simpleeval, for every rule of every request. Pasting is also an injection: a rule text
``1) || (1`` (from a policy store other than a CSV file, whose reader refuses the unbalanced
brackets) closes the parenthesis Casbin puts around it and rewrites the whole matcher. Here
each distinct text is parsed on its own (a text that is not one whole expression is refused),
checked against a smaller whitelist than the matcher's, and compiled once, when the policy
loads, into a function of the request fields; the matcher's ``eval(p.sub_rule)`` calls it
through one dictionary lookup, so a decision costs the same with 100 rules or 100,000.

What a rule's expression may use:

- comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``), ``in`` / ``not in`` (the right side
  a list or tuple, or ``r.claims``: a string there would test for a substring, and a claim the
  identity provider sends as ``"red,blue"`` would let ``"e" in r.claims.teams`` hold; it fails
  the rule instead), ``&&``, ``||``, ``!``, parentheses;
- literals: strings, numbers, ``True``/``False``/``None``, lists and tuples of them;
- the request fields the model defines (``r.sub``, ``r.obj``, ``r.act``), claims
  (``r.claims.NAME``, nested ``r.claims.a.b``) and the declared object attributes
  (``r.obj.NAME``, attributes.py);
- calls of the matcher functions (``keyMatch2``, ``regexMatch``, ``ipMatch``… and ``g``).

Nothing else: no other attribute, no rule fields (``p.…``), no subscripts, lambdas,
comprehensions, arithmetic, names beginning with ``_``, and no builtins (the functions run with
an empty ``__builtins__``). A text that breaks a rule is refused with its ``file:line``, and the
whole policy with it (a reload keeps the old one serving).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from casbin.util import escape_assertion

from gatekeeper.policy.matcher import (
    ATTRIBUTES,
    MatcherError,
    _Attributes,
    casbin_to_python,
    check_features,
    compile_lambda,
    eval_fields,
)

__all__ = ["RuleExpressionError", "bind_rule_expressions", "compile_rule"]

MAX_LENGTH = 4096  # characters of one rule's text: parsing stays cheap and bounded

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Call, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, ast.Attribute,
)
_CONSTANTS = (str, int, float, bool, type(None))
_CONTAINERS = (list, tuple, Mapping)


class RuleExpressionError(ValueError):
    """Rules whose expression cannot be compiled; ``problems`` are 'file:line: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Rule(Protocol):
    @property
    def values(self) -> tuple[str, ...]: ...

    @property
    def source(self) -> str: ...


def member(item: Any, container: Any) -> bool:
    """``in`` in a rule: membership of a list, tuple or mapping, never a substring."""
    if not isinstance(container, _CONTAINERS):
        raise TypeError(f"'in' needs a list, not a {type(container).__name__}")
    return item in container


class _Membership(ast.NodeTransformer):
    """``a in b`` → ``_in(a, b)``; ``a not in b`` → ``not _in(a, b)`` (one operator at a time:
    a chain such as ``a in b in c`` is refused before this runs)."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        op = node.ops[0]
        if not isinstance(op, (ast.In, ast.NotIn)):
            return node
        call = ast.Call(func=ast.Name(id="_in", ctx=ast.Load()),
                        args=[node.left, node.comparators[0]], keywords=[])
        result: ast.expr = call if isinstance(op, ast.In) else ast.UnaryOp(ast.Not(), call)
        return ast.copy_location(result, node)


def _check(tree: ast.AST, request: Collection[str], functions: Collection[str]) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise MatcherError(f"{type(node).__name__} expressions are not allowed in a rule "
                               "(comparisons, in, &&, ||, !, literals, request fields, claims and "
                               "the matcher functions are)")
        if isinstance(node, ast.Constant) and not isinstance(node.value, _CONSTANTS):
            raise MatcherError(f"the literal {ast.unparse(node)} is not allowed in a rule")
        if isinstance(node, ast.Compare) and len(node.ops) > 1 and any(
                isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            raise MatcherError("a chained 'in' is not allowed in a rule: add parentheses")
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in functions):
                called = ast.unparse(node.func)
                raise MatcherError(f"a rule calls {called!r}, which is not a matcher function "
                                   f"(they are: {', '.join(sorted(functions))})")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise MatcherError("a rule passes arguments by name or with '*'")
        if isinstance(node, ast.Name) and node.id not in request and node.id not in functions:
            written = node.id.replace("_", ".", 1) if node.id[:2] in ("r_", "p_") else node.id
            why = (" (a rule reads the request, not other rule fields)"
                   if node.id.startswith("p_") else "")
            raise MatcherError(f"a rule uses an unknown name {written!r}{why}")
    callees = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):  # a function's name is only ever called, never a value
        if isinstance(node, ast.Name) and node.id in functions and id(node) not in callees:
            raise MatcherError(f"a rule uses the function {node.id!r} without calling it")


def compile_rule(
    text: str,
    request: Sequence[str],
    namespace: dict[str, Any],
    role_functions: Collection[str],
    attributes: Sequence[str],
) -> Callable[..., Any]:
    """One rule's text → ``function(*request)``, or MatcherError with the reason."""
    if len(text) > MAX_LENGTH:
        raise MatcherError(f"the rule's expression is longer than {MAX_LENGTH} characters")
    # As Casbin reads the text: r.sub → r_sub (its own escaping), then &&, ||, ! → Python.
    source = casbin_to_python(escape_assertion(text)).strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise MatcherError(f"the rule is not one valid expression ({reason}): {text!r}") from None
    check_features(tree, role_functions, attributes, where="a rule")
    functions = {name for name, value in namespace.items()
                 if callable(value) and not name.startswith("_")} | set(role_functions)
    _check(tree, [f for f in request if f != ATTRIBUTES], functions)
    body = _Membership().visit(_Attributes(attributes).visit(tree)).body
    try:
        return compile_lambda(body, request, namespace, "<rule>")
    except (RecursionError, MemoryError, ValueError) as exc:
        raise MatcherError(f"the rule cannot be compiled ({type(exc).__name__})") from None


def bind_rule_expressions(
    matcher: str,
    rules: Sequence[_Rule],
    p_tokens: Sequence[str],
    request: Sequence[str],
    namespace: dict[str, Any],
    role_functions: Collection[str] = (),
    attributes: Sequence[str] = (),
) -> None:
    """Compile the text of every rule field the matcher passes to eval(), once per distinct
    text, and bind the matcher's ``_eval`` to them. Raises RuleExpressionError naming every
    rule that cannot be compiled."""
    fields = [p_tokens.index(field) for field in eval_fields(matcher) if field in p_tokens]
    if not fields:
        return
    namespace.setdefault("_in", member)
    compiled: dict[str, Callable[..., Any]] = {}
    problems: list[str] = []
    for rule in rules:
        for index in fields:
            text = rule.values[index]
            if text in compiled:
                continue
            try:
                compiled[text] = compile_rule(text, request, namespace, role_functions,
                                              attributes)
            except MatcherError as exc:
                problems.append(f"{rule.source}: {exc}")
    if problems:
        raise RuleExpressionError(problems)

    def evaluate(text: str, *values: Any) -> Any:
        return compiled[text](*values)  # a text no rule holds (none at load): KeyError, fails

    namespace["_eval"] = evaluate
