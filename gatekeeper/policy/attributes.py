"""Attributes of the request object, ``r.obj.NAME``, declared by the model and read per request.

Casbin's ABAC examples hand the enforcer an object and read ``r.obj.Owner``. Here ``r.obj`` is
the canonical path, and its attributes come from the request itself, each declared in the
model's ``[object_attributes]`` section (pycasbin reads no such section and ignores it):

    [object_attributes]
    Owner = query owner          # the query parameter "owner", read as query.py reads it
    Team = path /teams/:Team/*   # the path segment the pattern's ":Team" matches
    Verb = method                # the method, upper-case

An attribute the request does not have — no such parameter, a path the pattern does not match,
a parameter frameworks could read differently — is absent, and a rule reading it fails: an
allow does not apply, a deny does (as a missing claim). The values read for one decision are
part of the decision cache's key (engine.py), so a decision for ``?owner=alice`` never answers
``?owner=bob``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.policy.features import _options
from gatekeeper.policy.query import Reading, query_parameter
from gatekeeper.request import RequestView

__all__ = ["NO_ATTRIBUTES", "SECTION", "Attribute", "ObjectAttributes", "parse_object_attributes"]

SECTION = "object_attributes"
Value = str | Reading | None
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PARAMETER = re.compile(r"[A-Za-z0-9_-]+")
# A literal segment of a canonical path without escapes (paths.py): other characters would
# make the pattern mean one thing here and another to keyMatch2.
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()+,=@-]+")
# Names Casbin reads as a method of the value rather than an attribute (r.obj.upper).
_METHOD_NAMES = frozenset(dir(str)) | frozenset(dir(dict))


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    source: str  # "query" | "path" | "method"
    parameter: str = ""  # query: the parameter's name
    segments: tuple[str | None, ...] = ()  # path: literal text, or None for any one segment
    position: int = -1  # path: the segment that is the value
    any_suffix: bool = False  # path: the pattern ended in "/*"

    def read(self, path: str, method: str, query: bytes) -> Value:
        if self.source == "method":
            return method
        if self.source == "query":
            return query_parameter(query, self.parameter)
        given = path.split("/")
        if (len(given) <= len(self.segments)) if self.any_suffix else (
                len(given) != len(self.segments)):
            return None
        for want, got in zip(self.segments, given, strict=False):
            if (not got) if want is None else want != got:
                return None
        return given[self.position]


@dataclass(frozen=True, slots=True)
class ObjectAttributes:
    attributes: tuple[Attribute, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(attribute.name for attribute in self.attributes)

    def read(self, path: str, method: str, request: RequestView | None) -> tuple[Value, ...]:
        """The values in declared order (hashable: a part of the decision cache's key)."""
        if not self.attributes:
            return ()
        query = request.query if request is not None else b""
        return tuple(attribute.read(path, method, query) for attribute in self.attributes)


NO_ATTRIBUTES = ObjectAttributes()


def _attribute(name: str, value: str) -> Attribute | str:
    """The declaration ``name = value``, or the reason it is refused."""
    if not _NAME.fullmatch(name) or name in _METHOD_NAMES:
        return (f"{name!r} cannot be an attribute name (a letter, then letters, digits or '_'; "
                "not a name Casbin reads as a method)")
    source, _, argument = value.partition(" ")
    argument = argument.strip()
    if source == "method" and not argument:
        return Attribute(name, "method")
    if source == "query" and _PARAMETER.fullmatch(argument):
        return Attribute(name, "query", parameter=argument)
    if source == "path":
        return _path_attribute(name, argument)
    return (f"{name} = {value!r}: an attribute is 'query NAME' (a query parameter), "
            f"'path /PATTERN/:{name}/…' (a path segment) or 'method'")


def _path_attribute(name: str, pattern: str) -> Attribute | str:
    body, any_suffix = (pattern[:-2], True) if pattern.endswith("/*") else (pattern, False)
    parts = body.split("/")
    if parts[0] != "" or len(parts) < 2:
        return f"the pattern {pattern!r} of {name} does not start with '/'"
    segments: list[str | None] = [""]
    for part in parts[1:]:
        if part.startswith(":") and _NAME.fullmatch(part[1:]):
            segments.append(None)
        elif _LITERAL.fullmatch(part):
            segments.append(part)
        else:
            return (f"the segment {part!r} of {name}'s pattern is neither plain text nor a "
                    ":name (write it in canonical form, or as a :name)")
    if parts.count(f":{name}") != 1:
        return f"the pattern {pattern!r} must hold ':{name}' once: the segment that is {name}"
    return Attribute(name, "path", segments=tuple(segments), position=parts.index(f":{name}"),
                     any_suffix=any_suffix)


def parse_object_attributes(path: Path, text: str) -> tuple[ObjectAttributes, list[str]]:
    """The model's ``[object_attributes]``, and every problem with its ``file:line``."""
    attributes: list[Attribute] = []
    problems: list[str] = []
    for number, section, key, value in _options(text):
        if section != SECTION:
            continue
        parsed = _attribute(key, value)
        if isinstance(parsed, str):
            problems.append(f"{path}:{number}: {parsed}")
        elif key in (attribute.name for attribute in attributes):
            problems.append(f"{path}:{number}: the attribute {key} is declared twice")
        else:
            attributes.append(parsed)
    return ObjectAttributes(tuple(attributes)), problems
