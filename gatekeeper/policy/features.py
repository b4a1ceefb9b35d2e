"""Which parts of Casbin's model syntax gatekeeper evaluates; everything else is refused by name.

The engine reproduces the stock Enforcer's decisions for the model features listed in
docs/policies.md ("Casbin model features"). A model file may say more than that — a role domain
on another role type than ``g`` (``g2 = _, _, _``), time-limited roles (``g = _, _, (_, _)``),
a second policy type (``p2``), a key pycasbin never reads (``m3`` without ``m2``, an unknown
section) — and an evaluator that skipped such a part would decide differently from Casbin
without a word: a role granted in one tenant would hold in every tenant. So each of those is a
load error naming the feature.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from casbin.model import Model

DOCS = "docs/policies.md, 'Casbin model features'"

_SECTIONS = {
    "request_definition": "r", "policy_definition": "p", "role_definition": "g",
    "policy_effect": "e", "matchers": "m",
}
_SECOND_TYPE = {
    "r": "a second request type", "p": "a second policy type", "e": "a second policy effect",
    "m": "a second matcher",
}
_ROLE_KEY = re.compile(r"g[0-9]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unsupported(feature: str, detail: str = "") -> str:
    """The one wording of a refusal: the feature, why, and where the docs list what is supported."""
    return f"{feature} is not supported{f' ({detail})' if detail else ''}; see {DOCS}"


def _options(text: str) -> Iterator[tuple[int, str, str, str]]:
    """(line, section, key, value) of every option, as pycasbin's config parser reads them
    (``#``/``;`` comment lines, ``\\`` continuation lines, lines broken at ``\\n`` only)."""
    section, start, buffer = "", 0, ""

    def flush() -> Iterator[tuple[int, str, str, str]]:
        key, _, value = buffer.partition("=")
        yield start, section, key.strip(), value.strip()

    for number, raw in enumerate(text.split("\n"), start=1):  # Casbin breaks at "\n" only
        line = raw.strip()
        header = line.startswith("[") and line.endswith("]")
        if buffer and (not line or line[0] in "#;" or header):
            yield from flush()  # a blank, comment or section line ends a continued option
            buffer = ""
        if not line or line[0] in "#;":
            continue
        if header:
            section = line[1:-1]
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1].strip() + " "
            continue
        buffer += line
        yield from flush()
        buffer = ""
    if buffer:
        yield from flush()


def model_problems(path: Path, text: str, model: Model) -> list[str]:
    """Every part of the model file the engine would not evaluate exactly as Casbin does."""
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for number, section, key, value in _options(text):
        where = f"{path}:{number}"
        if section == "object_attributes":
            continue  # gatekeeper's own section: attributes.py reads and checks it
        letter = _SECTIONS.get(section)
        if letter is None:
            problems.append(f"{where}: section [{section}] is not a Casbin model section "
                            "(Casbin would ignore it)")
            continue
        if (section, key) in seen:
            problems.append(f"{where}: {key} is defined twice in [{section}] "
                            f"(line {seen[(section, key)]}; Casbin keeps only the last)")
            continue
        seen[(section, key)] = number
        loaded = letter in model.keys() and key in model[letter]  # noqa: SIM118 - casbin Model has no __contains__
        if letter == "g" and _ROLE_KEY.fullmatch(key):
            if not loaded:
                problems.append(f"{where}: {key} is never read by Casbin (role types are read "
                                "in order g, g2, g3, … and stop at the first gap)")
            else:
                problems += [f"{where}: {p}" for p in _role_definition_problems(key, value)]
            continue
        if key == letter:
            if letter in "rp":
                problems += [f"{where}: {p}" for p in _fields_problems(key, value)]
            continue
        if re.fullmatch(rf"{letter}[0-9]+", key):
            problems.append(f"{where}: " + unsupported(
                f"{_SECOND_TYPE[letter]} ({key})",
                "gatekeeper decides every request with r, p, e and m"))
        else:
            problems.append(f"{where}: [{section}] may only define {letter!r} "
                            f"(Casbin never reads {key!r})")
    return problems


def _role_definition_problems(key: str, value: str) -> list[str]:
    if "(" in value:
        return [unsupported(f"time-limited roles ({key} = {value})",
                            "the validity window of each role grant would be ignored")]
    fields = [part.strip() for part in value.split(",")]
    if fields == ["_", "_", "_"]:
        # g's domain is the request's (policy.domain); another role type's would be read
        # from nothing gatekeeper knows about.
        return [] if key == "g" else [unsupported(
            f"role domains ({key} = {value})", "only g, the roles of the caller, has a domain")]
    if fields != ["_", "_"]:
        return [unsupported(f"the role definition {key} = {value}",
                            "a role definition must be '_, _': a member and a role")]
    return []


def _fields_problems(key: str, value: str) -> list[str]:
    names = [part.strip() for part in value.split(",")]
    problems = [f"{key}: field {name!r} is not a plain name" for name in names
                if not _NAME.fullmatch(name)]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        problems.append(f"{key}: field(s) {', '.join(twice)} defined twice")
    return problems
