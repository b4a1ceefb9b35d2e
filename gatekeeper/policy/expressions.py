"""Rules written as expressions: ``eval(p.sub_rule)``, each policy line's text compiled once.

Casbin's ``eval(p.sub_rule)`` pastes the rule's text into the matcher and evaluates the result
with simpleeval, for every rule of every request. Pasting is also an injection: a rule text
``1) || (1`` (from a policy store other than a CSV file, whose reader refuses the unbalanced
brackets) closes the parenthesis Casbin puts around it and rewrites the whole matcher. Here
each distinct text is parsed on its own (a text that is not one whole expression is refused),
checked against a smaller whitelist than the matcher's and written out as Python source in
one pass (every name in it checked; its literals lifted out into a tuple, so that rules that
differ only in their values — ``r.claims.level >= 2``, ``>= 3`` — share one function), and all
the shapes of a policy are compiled together, once, when it loads; the matcher's
``eval(p.sub_rule)`` finds a rule's function and values through one dictionary lookup, so a
decision costs the same with 100 rules or 100,000.

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
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from casbin.util import escape_assertion

from gatekeeper.policy.features import unsupported
from gatekeeper.policy.matcher import (
    _METHOD_NAMES,
    ATTRIBUTES,
    MatcherError,
    _as_written,
    attribute_help,
    casbin_to_python,
    eval_fields,
)

__all__ = ["RuleExpressionError", "bind_rule_expressions", "member", "translate_rule"]

MAX_LENGTH = 4096  # characters of one rule's text: parsing stays cheap and bounded
MAX_DEPTH = 40  # nested operations in one rule
_BATCH = 1000  # rule shapes compiled by one compile() call
_CONSTANTS = "_k"  # the parameter holding a rule's literals (a name no rule may write)

_COMPARISONS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
                ast.GtE: ">="}
_CONTAINERS = (list, tuple, Mapping)
# Functions whose second argument is a pattern: a literal one is tried at load, so that a rule
# whose pattern cannot compile is refused then, not failed on every request.
_PATTERN_PROBES = {"keyMatch": "/", "keyMatch2": "/", "keyMatch3": "/", "keyMatch4": "/",
                   "keyMatch5": "/", "regexMatch": "/", "globMatch": "/"}


# The request fields fed by the subject, the claims and the path: (subject, claims, obj).
FieldNames = tuple[str, str, str]
DEFAULT_NAMES: FieldNames = ("r_sub", "r_claims", "r_obj")


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


def _refused(node: ast.AST) -> MatcherError:
    return MatcherError(f"{type(node).__name__} expressions are not allowed in a rule "
                        "(comparisons, in, &&, ||, !, literals, request fields, claims and the "
                        "matcher functions are)")


class _Writer:
    """A checked rule tree → the Python source of its body, in one pass. ``names``: the
    request fields fed by the subject, the claims and the path (inputs.py)."""

    def __init__(self, request: Collection[str], functions: Mapping[str, Callable[..., Any]],
                 role_functions: Collection[str], attributes: Sequence[str],
                 names: FieldNames) -> None:
        self._request = request
        self._functions = functions
        self._roles = role_functions
        self._arity = role_functions if isinstance(role_functions, Mapping) else {}
        self._attributes = list(attributes)
        self._subject, self._claims, self._obj = names
        self.constants: list[Any] = []

    def write(self, node: ast.AST, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            raise MatcherError(f"the rule nests more than {MAX_DEPTH} operations")
        deeper = depth + 1
        if isinstance(node, ast.BoolOp):
            word = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + word.join(self.write(value, deeper) for value in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"(not {self.write(node.operand, deeper)})"
            if isinstance(node.op, ast.USub):
                return f"(-{self.write(node.operand, deeper)})"
            raise _refused(node.op)
        if isinstance(node, ast.Compare):
            return self._compare(node, deeper)
        if isinstance(node, ast.Call):
            return self._call(node, deeper)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, deeper)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if not isinstance(value, (str, int, float, type(None))) or (
                    isinstance(value, float) and not math.isfinite(value)):
                raise MatcherError(f"the literal {ast.unparse(node)} is not allowed in a rule")
            self.constants.append(value)
            return f"{_CONSTANTS}[{len(self.constants) - 1}]"
        if isinstance(node, (ast.Tuple, ast.List)):
            items = "".join(self.write(item, deeper) + ", " for item in node.elts)
            return f"({items})" if isinstance(node, ast.Tuple) else f"[{items}]"
        raise _refused(node)

    def _compare(self, node: ast.Compare, depth: int) -> str:
        membership = [isinstance(op, (ast.In, ast.NotIn)) for op in node.ops]
        if any(membership):
            if len(node.ops) > 1:
                raise MatcherError("a chained 'in' is not allowed in a rule: add parentheses")
            call = (f"_in({self.write(node.left, depth)}, "
                    f"{self.write(node.comparators[0], depth)})")
            return call if isinstance(node.ops[0], ast.In) else f"(not {call})"
        parts = [self.write(node.left, depth)]
        for op, right in zip(node.ops, node.comparators, strict=True):
            symbol = _COMPARISONS.get(type(op))
            if symbol is None:
                raise _refused(op)
            parts += [symbol, self.write(right, depth)]
        return "(" + " ".join(parts) + ")"

    def _call(self, node: ast.Call, depth: int) -> str:
        if not isinstance(node.func, ast.Name):
            raise MatcherError(f"a rule calls {ast.unparse(node.func)!r}, which is not a "
                               "matcher function")
        name = node.func.id
        if name.startswith("_"):
            raise MatcherError(f"a rule uses an unknown name {name!r}")
        if name == "eval":
            raise MatcherError(unsupported("eval() in a rule", "a rule is one expression; "
                                           "eval(p.NAME) belongs in the matcher"))
        if name not in self._functions:
            raise MatcherError(f"a rule calls {name!r}, which is not a matcher function "
                               f"(they are: {', '.join(sorted(self._functions))})")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise MatcherError("a rule passes arguments by name or with '*'")
        arity = self._arity.get(name, 2)
        if name in self._roles and len(node.args) != arity:
            raise MatcherError(unsupported(
                f"{name}() with {len(node.args)} arguments",
                f"{name} takes a member and a role{', and the domain' if arity == 3 else ''}"))
        if name == "g" and name in self._roles and ast.unparse(node.args[0]) != self._subject:
            raise MatcherError(unsupported(f"g({_as_written(node.args[0])}, …)",
                                           "g's first argument must be the subject "
                                           f"({_as_written(ast.parse(self._subject))})"))
        probe = _PATTERN_PROBES.get(name)
        if probe is not None and len(node.args) == 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str):
            try:
                self._functions[name](probe, node.args[1].value)
            except (re.error, ValueError) as exc:
                raise MatcherError(f"{node.args[1].value!r} is not a valid pattern for "
                                   f"{name}() ({exc})") from None
        return f"{name}(" + ", ".join(self.write(arg, depth) for arg in node.args) + ")"

    def _attribute(self, node: ast.Attribute, depth: int) -> str:
        if (isinstance(node.value, ast.Name) and node.value.id == self._obj
                and node.attr in self._attributes):
            return f"_attr({ATTRIBUTES}, {self._attributes.index(node.attr)}, {node.attr!r})"
        base = node.value
        while isinstance(base, ast.Attribute):
            base = base.value
        base_name = base.id if isinstance(base, ast.Name) else ""
        if base_name != self._claims:
            detail = attribute_help(base_name, self._subject, self._obj)
            raise MatcherError(unsupported(f"attribute access {_as_written(node)!r}",
                                           detail.format(node.attr)))
        if node.attr.startswith("_") or node.attr in _METHOD_NAMES:
            raise MatcherError(unsupported(f"the claim name {node.attr!r} in a rule",
                                           "Casbin reads it as a method of the value"))
        return f"_field({self.write(node.value, depth)}, {node.attr!r})"

    def _name(self, node: ast.Name) -> str:
        name = node.id
        if not name.startswith("_") and name in self._request:
            return name
        if not name.startswith("_") and name in self._functions:
            raise MatcherError(f"a rule uses the function {name!r} without calling it")
        written = name.replace("_", ".", 1) if name[:2] in ("r_", "p_") else name
        why = " (a rule reads the request, not other rule fields)" if name[:2] == "p_" else ""
        raise MatcherError(f"a rule uses an unknown name {written!r}{why}")


def translate_rule(
    text: str,
    request: Sequence[str],
    functions: Mapping[str, Callable[..., Any]],
    role_functions: Collection[str],
    attributes: Sequence[str],
    names: FieldNames = DEFAULT_NAMES,
) -> tuple[str, tuple[Any, ...]]:
    """One rule's text → the Python source of its body (its shape, reading its literals from
    ``_k``) and its literals, or MatcherError with the reason."""
    if len(text) > MAX_LENGTH:
        raise MatcherError(f"the rule's expression is longer than {MAX_LENGTH} characters")
    # As Casbin reads the text: r.sub → r_sub (its own escaping), then &&, ||, ! → Python.
    source = casbin_to_python(escape_assertion(text)).strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise MatcherError(f"the rule is not one valid expression ({reason}): {text!r}") from None
    writer = _Writer([f for f in request if f != ATTRIBUTES], functions, role_functions,
                     attributes, names)
    return writer.write(tree.body), tuple(writer.constants)


def _compile(bodies: Sequence[str], request: Sequence[str], namespace: dict[str, Any]
             ) -> list[Callable[..., Any]]:
    """One compile() for many bodies: ``(lambda *request, _k: body, …)`` (_Writer's output)."""
    head = f"lambda {', '.join((*request, _CONSTANTS))}: "
    source = "(\n" + "".join(f"{head}{body},\n" for body in bodies) + ")"
    functions: tuple[Callable[..., Any], ...] = eval(compile(source, "<rules>", "eval"), namespace)  # noqa: S307 - only _Writer's output
    return list(functions)


def bind_rule_expressions(
    matcher: str,
    rules: Sequence[_Rule],
    p_tokens: Sequence[str],
    request: Sequence[str],
    namespace: dict[str, Any],
    role_functions: Collection[str] = (),
    attributes: Sequence[str] = (),
    names: FieldNames = DEFAULT_NAMES,
) -> None:
    """Compile the text of every rule field the matcher passes to eval(), once per distinct
    text, and bind the matcher's ``_eval`` to them. Raises RuleExpressionError naming every
    rule that cannot be compiled."""
    fields = [p_tokens.index(field) for field in eval_fields(matcher) if field in p_tokens]
    if not fields:
        return
    namespace.setdefault("_in", member)
    functions = {name: value for name, value in namespace.items()
                 if callable(value) and not name.startswith("_")}
    bodies: dict[str, tuple[str, tuple[Any, ...]]] = {}
    problems: list[str] = []
    for rule in rules:
        for index in fields:
            text = rule.values[index]
            if text in bodies:
                continue
            try:
                bodies[text] = translate_rule(text, request, functions, role_functions,
                                              attributes, names)
            except MatcherError as exc:
                problems.append(f"{rule.source}: {exc}")
            except RecursionError:
                problems.append(f"{rule.source}: the rule nests too deeply")
    if problems:
        raise RuleExpressionError(problems)
    shapes = list(dict.fromkeys(shape for shape, _ in bodies.values()))
    by_shape: dict[str, Callable[..., Any]] = {}
    for start in range(0, len(shapes), _BATCH):
        batch = shapes[start:start + _BATCH]
        by_shape.update(zip(batch, _compile(batch, request, namespace), strict=True))
    compiled = {text: (by_shape[shape], constants) for text, (shape, constants) in bodies.items()}

    def evaluate(text: str, *values: Any) -> Any:
        function, constants = compiled[text]  # a text no rule holds (none at load): fails
        return function(*values, constants)

    namespace["_eval"] = evaluate
