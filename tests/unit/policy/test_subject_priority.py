"""``subjectPriority(p.eft) || deny``: the rule of the most specific subject decides, as the stock
Enforcer orders them — checked against ``casbin.Enforcer`` with the request's token roles loaded
as ``g`` lines (subject → role:NAME, role:authenticated, role:anonymous), for every caller and
every set of token roles, since token roles move roles down the hierarchy."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import casbin
import pytest

from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.policy.priority import HierarchyCycle, subject_levels
from tests.support.policy import casbin_quiet

MODEL = textwrap.dedent("""\
    [request_definition]
    r = sub, obj, act

    [policy_definition]
    p = sub, obj, act, eft

    [role_definition]
    g = _, _

    [policy_effect]
    e = subjectPriority(p.eft) || deny

    [matchers]
    m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act
    """)

# Casbin's subject_priority example, in gatekeeper's role: names, plus a rule for a role only a
# token gives (role:auditor) and one for every caller.
POLICY = textwrap.dedent("""\
    p, role:root, /data1, read, deny
    p, role:admin, /data1, read, deny
    p, role:editor, /data1, read, deny
    p, role:subscriber, /data1, read, deny
    p, jane, /data1, read, allow
    p, alice, /data1, read, allow
    p, role:auditor, /data1, read, allow
    p, role:editor, /data2, read, allow
    p, role:admin, /data2, read, deny
    p, role:authenticated, /data3, read, allow
    p, role:subscriber, /data3, read, deny
    g, role:admin, role:root
    g, role:editor, role:admin
    g, role:subscriber, role:admin
    g, jane, role:editor
    g, alice, role:subscriber
    """)

CALLERS = ["jane", "alice", "zoe"]
TOKEN_ROLES = ["editor", "subscriber", "auditor", "admin"]
TARGETS = [("/data1", "read"), ("/data2", "read"), ("/data3", "read"), ("/data1", "write")]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("subject-priority")
    (directory / "model.conf").write_text(MODEL)
    (directory / "policy.csv").write_text(POLICY)
    return directory / "model.conf", directory / "policy.csv"


def stock_decision(files: tuple[Path, Path], tmp_path: Path, subject: str, roles: tuple[str, ...],
                   obj: str, act: str) -> bool:
    links = "".join(f"g, {subject}, {role}\n" for role in
                    [*(f"role:{r}" for r in roles), "role:authenticated", "role:anonymous"])
    policy = tmp_path / "with-token.csv"
    policy.write_text(POLICY + links)
    with casbin_quiet():
        return bool(casbin.Enforcer(str(files[0]), str(policy)).enforce(subject, obj, act))


def test_every_caller_and_token_decides_as_the_stock_enforcer(
    files: tuple[Path, Path], tmp_path: Path,
) -> None:
    ours: CompiledPolicy = load_policy(*files).policy
    ours.role_names = frozenset()  # Casbin's example names users and roles alike
    answers = set()
    for subject in CALLERS:
        for count in range(3):
            for roles in itertools.combinations(TOKEN_ROLES, count):
                for obj, act in TARGETS:
                    expected = stock_decision(files, tmp_path, subject, roles, obj, act)
                    got = ours.decide(subject, roles, act, obj, authenticated=True).allowed
                    assert got is expected, (subject, roles, obj, act)
                    answers.add(got)
    assert answers == {True, False}


def test_the_most_specific_subject_wins(files: tuple[Path, Path]) -> None:
    policy = load_policy(*files).policy
    # jane (a user, level 0) is allowed although every role above her denies.
    verdict = policy.decide("jane", (), "read", "/data1", authenticated=True)
    assert verdict.allowed and verdict.rule is not None and verdict.rule.values[0] == "jane"
    # A token role is a link of this request: zoe as an editor is denied by the editor's rule
    # (role:editor is below role:admin, so its deny comes before admin's).
    assert not policy.decide("zoe", ("editor",), "read", "/data1", authenticated=True).allowed
    # role:auditor held by a token: its own allow, no role above it denying first.
    assert policy.decide("zoe", ("auditor",), "read", "/data1", authenticated=True).allowed


def test_casbins_levels() -> None:
    levels = subject_levels([("jane", "editor"), ("editor", "admin"), ("admin", "root")])
    assert levels == {"jane": 0, "editor": 1, "admin": 2, "root": 3}
    with pytest.raises(HierarchyCycle):
        subject_levels([("a", "b"), ("b", "a")])


def test_a_cycle_in_the_g_lines_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "model.conf").write_text(MODEL)
    (tmp_path / "policy.csv").write_text(POLICY + "g, role:root, role:editor\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert any("cycle" in problem for problem in caught.value.problems), caught.value.problems
