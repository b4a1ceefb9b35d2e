"""``gatekeeper policy diff OLD NEW``: the decisions that change between two policy versions.

    gatekeeper policy diff --config gatekeeper.yaml git:origin/main config \\
        --cases policies/policy_test.yaml --traffic access.log --allow-change 'role:admin /admin/*'

OLD and NEW each name a model + policy pair:

- ``config``: the files the config names (what ``run`` would serve now);
- ``DIR``: a directory holding files of the same names as the config's (a checkout, a copy);
- ``MODEL,POLICY``: two files;
- ``git:REV``: the config's two files as committed at REV (``git show REV:FILE``).

Both are decided exactly as the proxy decides (``policy test``'s ``Decider``: the config's
``public_paths``, ``auth.roles_claims`` and issuer prefixes), over the requests of
diff_requests.py. Exit: 0 when no decision changes, or every change is covered by an
``--allow-change`` pattern; 1 when one is not; 2 usage, configuration, or a policy that does not
load. A pattern is words that must all hold: a METHOD (or ``*``), a path glob (``/admin/*``;
``*`` crosses ``/``), ``sub:GLOB``, ``role:NAME`` (the caller holds that token role),
``anonymous``, ``to:allow`` / ``to:deny`` (the new decision).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.cli.diff_requests import Probe, from_cases, from_traffic, generated, names
from gatekeeper.cli.policy import (
    ALLOW,
    DENY,
    USAGE,
    Decider,
    UsageError,
    _settings,
)
from gatekeeper.errors import BadRequest
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.settings import PolicySettings, Settings

_METHOD = re.compile(r"[A-Z]+|\*")


@dataclass(frozen=True, slots=True)
class Decided:
    allowed: bool
    reason: str
    rule: str | None

    def __str__(self) -> str:
        return f"{'allow' if self.allowed else 'deny'} ({self.rule or self.reason})"

    def as_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class Change:
    probe: Probe
    old: Decided
    new: Decided
    covered_by: str | None  # the --allow-change pattern that covers it

    def as_json(self) -> dict[str, Any]:
        r = self.probe.request
        return {"source": self.probe.source, "who": self.probe.who, "anonymous": r.anonymous,
                "sub": r.sub, "roles": list(r.roles), "method": r.method.upper(), "path": r.path,
                "old": self.old.as_json(), "new": self.new.as_json(),
                "covered_by": self.covered_by}


class AllowChange:
    """One ``--allow-change`` pattern: every word must hold for the change."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tests: list[Any] = []
        words = text.split()
        if not words:
            raise UsageError([f"--allow-change {text!r}: empty pattern"])
        for word in words:
            self._tests.append(self._parse(word))

    def _parse(self, word: str) -> Any:
        if word == "anonymous":
            return lambda c: c.probe.request.anonymous
        if word in ("to:allow", "to:deny"):
            return lambda c: c.new.allowed is (word == "to:allow")
        if word.startswith("sub:"):
            glob = word.removeprefix("sub:")
            return lambda c: c.probe.request.sub is not None and fnmatch.fnmatchcase(
                c.probe.request.sub, glob)
        if word.startswith("role:"):
            glob = word.removeprefix("role:")
            return lambda c: any(fnmatch.fnmatchcase(role, glob) for role in c.probe.request.roles)
        if word.startswith("/"):
            return lambda c: fnmatch.fnmatchcase(c.probe.request.path, word)
        if _METHOD.fullmatch(word):
            return lambda c: word == "*" or c.probe.request.method.upper() == word
        raise UsageError([f"--allow-change {self.text!r}: {word!r} is none of METHOD, /PATH-GLOB, "
                          "sub:GLOB, role:NAME, anonymous, to:allow, to:deny"])

    def covers(self, change: Change) -> bool:
        return all(test(change) for test in self._tests)


def policy_diff(
    config_path: str | None, old: str, new: str, *, cases: str | None, traffic: str | None,
    traffic_lines: int, generate: bool, max_requests: int, allow_change: Sequence[str],
    as_json: bool,
) -> int:
    try:
        patterns = [AllowChange(text) for text in allow_change]
        settings, files = _settings(config_path)
        with tempfile.TemporaryDirectory(prefix="gatekeeper-diff-") as scratch:
            deciders = [_load(settings, files, spec, label, Path(scratch) / label)
                        for spec, label in ((old, "old"), (new, "new"))]
        probes: list[Probe] = []
        notes: list[str] = []
        if cases is not None:
            probes += from_cases(Path(cases))
        roles, _ = names([side.policy for side in deciders])
        if traffic is not None:
            sampled = from_traffic(Path(traffic), roles, lines=traffic_lines, limit=max_requests)
            probes += sampled.probes
            notes += sampled.notes
        if generate:
            sampled = generated([d.policy for d in deciders], limit=max_requests)
            probes += sampled.probes
            notes += sampled.notes
        if not probes:
            raise UsageError(["nothing to compare: give --cases FILE or --traffic FILE, or drop "
                              "--no-generated"])
    except UsageError as exc:
        for line in exc.lines:
            print(f"gatekeeper: {line}", file=sys.stderr)
        return USAGE
    first: dict[tuple[Any, ...], Probe] = {}
    for probe in probes:  # a request asked by two sources counts once, for the first
        first.setdefault(probe.key(), probe)
    unique = list(first.values())
    counts = {source: sum(p.source == source for p in unique)
              for source in ("cases", "traffic", "generated")}
    changes = []
    for probe in unique:
        before, after = deciders[0].decide(probe), deciders[1].decide(probe)
        if before.allowed != after.allowed:
            change = Change(probe, before, after, None)
            covering = next((p.text for p in patterns if p.covers(change)), None)
            changes.append(Change(probe, before, after, covering))
    uncovered = sum(change.covered_by is None for change in changes)
    if as_json:
        print(json.dumps({"old": old, "new": new, "compared": counts, "notes": notes,
                          "changes": [c.as_json() for c in changes], "uncovered": uncovered},
                         indent=2))
    else:
        print(_table(changes, counts, notes, uncovered))
    return DENY if uncovered else ALLOW


class _Side:
    """One policy version, decided as the proxy decides it."""

    def __init__(self, decider: Decider, policy: CompiledPolicy) -> None:
        self._decider = decider
        self.policy = policy

    def decide(self, probe: Probe) -> Decided:
        try:
            outcome = self._decider.decide(probe.request)
        except BadRequest as exc:
            return Decided(False, exc.code, None)
        except UsageError as exc:  # an iss the config does not know: the same on both sides
            return Decided(False, "; ".join(exc.lines), None)
        return Decided(outcome.allowed, outcome.reason,
                       outcome.rule.source if outcome.rule is not None else None)


def _load(settings: Settings, files: PolicySettings, spec: str, label: str, scratch: Path
          ) -> _Side:
    model, policy = _files(files, spec, label, scratch)
    try:
        report = load_policy(model, policy, cache_size=0, settings=files)
    except PolicyError as exc:
        raise UsageError([f"{label} ({spec}) cannot be loaded:", *exc.problems]) from exc
    decider = Decider(report.policy, public_paths=settings.public_paths,
                      roles_claims=settings.auth.roles_claims,
                      subject_prefixes=settings.subject_prefixes())
    return _Side(decider, report.policy)


def _files(files: PolicySettings, spec: str, label: str, scratch: Path) -> tuple[Path, Path]:
    if spec == "config":
        return files.model, files.policy
    if spec.startswith("git:"):
        scratch.mkdir(parents=True)
        return (_git_show(spec.removeprefix("git:"), files.model, scratch, label),
                _git_show(spec.removeprefix("git:"), files.policy, scratch, label))
    if "," in spec:
        model, _, policy = spec.partition(",")
        pair = (Path(model), Path(policy))
    elif Path(spec).is_dir():
        pair = (Path(spec) / files.model.name, Path(spec) / files.policy.name)
    else:
        raise UsageError([f"{label} {spec!r}: give config, a directory, MODEL,POLICY or git:REV"])
    missing = [str(path) for path in pair if not path.is_file()]
    if missing:
        raise UsageError([f"{label} {spec!r}: no such file: {', '.join(missing)}"])
    return pair


def _git_show(revision: str, path: Path, scratch: Path, label: str) -> Path:
    if not revision or revision.startswith("-"):
        raise UsageError([f"{label}: git:REV needs a revision (git:HEAD, git:origin/main)"])
    try:
        shown = subprocess.run(  # noqa: S603 - argument list, no shell; revision checked above
            ["git", "-C", str(path.resolve().parent), "show", f"{revision}:./{path.name}"],  # noqa: S607
            capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError([f"{label}: git show failed ({exc})"]) from exc
    if shown.returncode != 0:
        error = shown.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError([f"{label}: git show {revision}:{path.name} failed: "
                          f"{error[0] if error else shown.returncode}"])
    target = scratch / path.name
    target.write_bytes(shown.stdout)
    return target


def _table(changes: Sequence[Change], counts: dict[str, int], notes: Sequence[str],
           uncovered: int) -> str:
    compared = ", ".join(f"{source} {count}" for source, count in counts.items() if count)
    lines = [f"{len(changes)} decision{'s' if len(changes) != 1 else ''} change "
             f"({uncovered} not covered by --allow-change) over {sum(counts.values())} "
             f"requests ({compared})"]
    if changes:
        rows = [("SOURCE", "WHO", "REQUEST", "OLD", "NEW", "ALLOWED BY")]
        rows += [(c.probe.source, c.probe.who, f"{c.probe.request.method.upper()} {c.probe.request.path}",
                  str(c.old), str(c.new), c.covered_by or "-") for c in changes]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
