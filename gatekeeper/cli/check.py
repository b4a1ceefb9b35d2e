"""``gatekeeper policy check``: the policy files named by the config loaded and linted, every
problem and warning with its file:line, in file and line order (``run`` and ``check`` report the
same lines: __main__.py calls ``check_policy_files`` too).

    gatekeeper policy check --config FILE

Exit codes as ``policy test`` (policy.py): 0 no problems, 1 problems, 2 usage or configuration.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from gatekeeper.cli.policy import ALLOW, DENY, USAGE, UsageError, _print_warnings, _settings
from gatekeeper.policy.loader import LoadReport, PolicyError, load_policy
from gatekeeper.settings import PolicySettings

_LOCATION = re.compile(r"(.*?):([0-9]+):")


@dataclass(frozen=True, slots=True)
class CheckResult:
    problems: list[str]
    warnings: list[str]
    summary: str
    loaded: LoadReport | None = None  # what `run` serves, rather than loading it twice


def check_policy_files(policy: PolicySettings) -> CheckResult:
    """Load and lint the files named by ``policy``: problems (file:line) and warnings."""
    try:
        report = load_policy(policy.model, policy.policy, cache_size=policy.decision_cache_size,
                             settings=policy)
    except PolicyError as exc:
        return CheckResult(sorted(exc.problems, key=_location), [],
                           f"{policy.policy.name}: not loadable")
    rules = len(report.policy.rules)
    return CheckResult([], sorted(report.warnings, key=_location),
                       f"{policy.policy.name}: {rules} rule{'s' if rules != 1 else ''}", report)


def _location(message: str) -> tuple[str, int]:
    """Sort key: 'policy.csv:12: ...' by file, then line number."""
    match = _LOCATION.match(message)
    return (match.group(1), int(match.group(2))) if match else (message, 0)


def policy_check(config_path: str | None) -> int:
    try:
        _, policy = _settings(config_path)
    except UsageError as exc:
        for line in exc.lines:
            print(f"gatekeeper: {line}", file=sys.stderr)
        return USAGE
    result = check_policy_files(policy)
    for problem in result.problems:
        print(problem)
    _print_warnings(result.warnings, file=sys.stdout)
    count = len(result.problems)
    print(f"{result.summary}; {count} problem{'s' if count != 1 else ''}, "
          f"{len(result.warnings)} warning{'s' if len(result.warnings) != 1 else ''}")
    return DENY if result.problems else ALLOW
