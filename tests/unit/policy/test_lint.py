"""Lint warnings follow how the matcher compares methods; misspelled effects are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.policy.loader import PolicyError, load_policy
from tests.support.paths import ROOT

DEFAULT_MODEL = (ROOT / "policies" / "model.conf").read_text()
METHOD_MATCH = "methodMatch(r.act, p.act)"


def warnings_for(tmp_path: Path, act_test: str, method: str) -> list[str]:
    (tmp_path / "model.conf").write_text(DEFAULT_MODEL.replace(METHOD_MATCH, act_test))
    (tmp_path / "policy.csv").write_text(f"p, role:viewer, /a/*, {method}, allow\n")
    return load_policy(tmp_path / "model.conf", tmp_path / "policy.csv").warnings


@pytest.mark.parametrize(("act_test", "method", "warned"), [
    (METHOD_MATCH, "GET|HEAD", False),
    (METHOD_MATCH, "GET|FETCH", True),
    ("regexMatch(r.act, p.act)", "^(GET|POST)$", False),
    ("regexMatch(r.act, p.act)", "(GET)|(POST)", False),
    ("regexMatch(r.act, p.act)", "^get$", True),
    ("r.act == p.act", "DELETE", False),
    ("r.act == p.act", "Delete", True),
    ("keyMatch(r.act, p.act)", "G*", False),
    ("keyMatch(r.act, p.act)", "get*", True),
    ("keyMatch2(r.act, p.act)", "POST", False),
    ("globMatch(r.act, p.act)", "P*", False),
    ("globMatch(r.act, p.act)", "p*", True),
    ("keyMatch4(r.act, p.act)", "{method}", False),
], ids=["methodMatch with known methods", "methodMatch with an unknown method",
        "regexMatch with an anchored alternation", "regexMatch with grouped methods",
        "regexMatch that only a lower-case method matches", "== with an upper-case method",
        "== with a method no request has", "keyMatch with a pattern GET matches",
        "keyMatch with a pattern only lower-case methods match",
        "keyMatch2 with a plain method", "globMatch with a pattern POST matches",
        "globMatch with a pattern only lower-case methods match",
        "keyMatch4 with a placeholder for the whole method"])
def test_methods_are_linted_the_way_the_matcher_compares_them(
    tmp_path: Path, act_test: str, method: str, warned: bool
) -> None:
    warnings = warnings_for(tmp_path, act_test, method)
    assert bool(warnings) is warned, warnings
    if warned:
        assert warnings[0].startswith(f"{tmp_path / 'policy.csv'}:1: ") or \
            warnings[0].startswith("policy.csv:1: "), warnings


@pytest.mark.parametrize("effect", ["Deny", "ALLOW", "DENY", "denied", "permit"],
                         ids=["Deny", "ALLOW", "DENY", "denied", "permit"])
def test_an_effect_other_than_allow_or_deny_is_an_error_on_its_line(
    tmp_path: Path, effect: str
) -> None:
    """Casbin compares effects exactly: a 'Deny' rule would silently never deny."""
    (tmp_path / "model.conf").write_text(DEFAULT_MODEL)
    (tmp_path / "policy.csv").write_text(f"p, role:viewer, /a/*, GET, allow\n"
                                         f"p, role:viewer, /a/secret, GET, {effect}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert caught.value.problems[0].startswith("policy.csv:2: effect "), caught.value.problems
