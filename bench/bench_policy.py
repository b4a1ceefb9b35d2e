"""Policy decision cost at 100 … 100,000 rules: gatekeeper's indexed engine vs the stock Enforcer.

In-process, one decision at a time, timed with perf_counter_ns:
- uncached: every request is a new (subjects, method, path), so the decision cache cannot help —
  this is the engine's own cost;
- cached: the same request again (the steady state of a hot route);
- stock: pycasbin's Enforcer.enforce on the same model and policy (fewer samples: at 100,000
  rules a deny takes about a second).
Also the time to load and validate each policy.

The generated policy has ROLES_PER_10 roles per 10 rules; every role owns 10 rules on its own
paths, so a user's decision concerns a fixed number of rules whatever the file's size.

With ``--domains``: tenants as Casbin domains (g = _, _, _; ``r.dom == p.dom``), one tenant per
10 rules, every tenant's rules for the same role ``role:member``, the tenant from a claim; the
token's role holds in the request's tenant. A decision concerns one tenant's 10 rules.

    .venv/bin/python bench/bench_policy.py               # writes bench/out/policy.json + .md
    .venv/bin/python bench/bench_policy.py --variant domains   # … policy-domains.json + .md
    .venv/bin/python bench/bench_policy.py --variant eval      # … policy-eval.json + .md

(``--domains`` is ``--variant domains``.) ``--variant eval``: the same rules, each with a
condition on the token's claims evaluated by ``eval(p.rule)`` (docs/policies.md, "Conditions
per rule"); every rule's text is distinct, so loading compiles one expression per rule, and
decisions pass the claims (cached per token).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import casbin

from gatekeeper.policy.functions import method_match
from gatekeeper.policy.loader import load_policy
from gatekeeper.settings.routes import DomainSource, PolicySettings

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "policies" / "model.conf"
RULES_PER_ROLE = 10


def casbin_model(request: str, policy: str, roles: str, matchers: str) -> str:
    """A model.conf's text: an allow unless a matching rule denies."""
    return (f"[request_definition]\nr = {request}\n\n[policy_definition]\np = {policy}\n\n"
            f"[role_definition]\ng = {roles}\n\n[policy_effect]\n"
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n\n"
            f"[matchers]\nm = {matchers}\n")


EVAL_MODEL = casbin_model(
    "sub, obj, act, claims", "sub, obj, act, rule, eft", "_, _",
    "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) && eval(p.rule)")
CLAIMS = {"level": 5, "teams": ["t1", "t2"]}


def write_policy(directory: Path, rules: int, variant: str = "rbac") -> Path:
    roles = max(1, rules // RULES_PER_ROLE)
    lines = ["g, role:admin, role:editor"]
    for role in range(roles):
        for n in range(RULES_PER_ROLE):
            effect = "deny" if n == RULES_PER_ROLE - 1 else "allow"
            # eval: a condition that holds for the benchmark's claims (the deny's too: it
            # must match to deny), distinct per rule of a role.
            condition = (f' r.claims.level >= {n % 5} && "t{1 + n % 2}" in r.claims.teams'
                         f' && r.sub != "nobody-{role}-{n}",' if variant == "eval" else "")
            lines.append(f"p, role:role{role}, /r{role}/p{n}/:id/items, GET|POST,{condition} {effect}")
    path = directory / f"policy-{rules}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


DOMAINS_MODEL = casbin_model(
    "sub, dom, obj, act", "sub, dom, obj, act, eft", "_, _, _",
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)")
DOMAINS = PolicySettings(domain=DomainSource(claim="tenant"))


def write_domains_policy(directory: Path, rules: int) -> tuple[Path, Path]:
    """One tenant ``tN`` per 10 rules, all for ``role:member``: (model, policy)."""
    tenants = max(1, rules // RULES_PER_ROLE)
    lines = ["g, role:admin, role:member, t0"]
    for tenant in range(tenants):
        for n in range(RULES_PER_ROLE):
            effect = "deny" if n == RULES_PER_ROLE - 1 else "allow"
            lines.append(f"p, role:member, t{tenant}, /p{n}/:id/items, GET|POST, {effect}")
    model = directory / "domains.model.conf"
    model.write_text(DOMAINS_MODEL)
    path = directory / f"policy-domains-{rules}.csv"
    path.write_text("\n".join(lines) + "\n")
    return model, path


def domain_requests(rules: int, count: int, allow: bool, rng: random.Random) -> list[Call]:
    """(subject, roles, method, path) with the tenant in the subject: ``user7@t3``. A deny:
    a path the tenant's rules do not have."""
    tenants = max(1, rules // RULES_PER_ROLE)
    calls = []
    for i in range(count):
        tenant = rng.randrange(tenants)
        rule = rng.randrange(RULES_PER_ROLE - 1)
        path = f"/p{rule}/{i}/items" if allow else f"/q{rule}/{i}/items"
        calls.append((f"user{i}@t{tenant}", ("member",), "GET", path))
    return calls


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_calls(calls: list[tuple[str, tuple[str, ...], str, str]], decide: object) -> list[float]:
    out: list[float] = []
    gc.disable()
    try:
        for subject, roles, method, path in calls:
            start = time.perf_counter_ns()
            decide(subject, roles, method, path)  # type: ignore[operator]
            out.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    return out


Call = tuple[str, tuple[str, ...], str, str]


def requests(rules: int, count: int, allow: bool, rng: random.Random) -> list[Call]:
    roles = max(1, rules // RULES_PER_ROLE)
    calls = []
    for i in range(count):
        role = rng.randrange(roles)
        rule = rng.randrange(RULES_PER_ROLE - 1)  # an allow rule of that role
        # allow: the role's own path; deny: the same user on another role's path (no rule).
        target_role = role if allow else (role + 1) % max(roles, 2)
        path = f"/r{target_role}/p{rule}/{i}/items"
        calls.append((f"user{i}", (f"role{role}",), "GET", path))
    return calls


def bench_size(rules: int, samples: int, stock_samples: int, rng: random.Random,
               variant: str = "rbac") -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="gk-policy-bench-"))
    domains = variant == "domains"
    make_requests = domain_requests if domains else requests
    if domains:
        model, policy_path = write_domains_policy(directory, rules)
    else:
        model, policy_path = MODEL, write_policy(directory, rules, variant)
    if variant == "eval":
        model = directory / "model.conf"
        model.write_text(EVAL_MODEL)
    started = time.perf_counter()
    report = load_policy(model, policy_path, cache_size=65536, settings=DOMAINS if domains else None)
    load_seconds = time.perf_counter() - started
    policy = report.policy

    def decide(subject: str, roles: tuple[str, ...], method: str, path: str) -> bool:
        if variant == "eval":  # the claims decide too: a key standing for this token
            return policy.decide(subject, roles, method, path, authenticated=True,
                                 claims=CLAIMS, cache_key=(subject, roles)).allowed
        user, _, tenant = subject.partition("@")
        return policy.decide(user, roles, method, path, authenticated=True,
                             claims={"tenant": tenant}).allowed

    result: dict[str, object] = {"rules": rules, "load_seconds": round(load_seconds, 3)}
    for kind, allow in (("allow", True), ("deny", False)):
        calls = make_requests(rules, samples, allow, rng)
        uncached = time_calls(calls, decide)
        cached = time_calls(calls, decide)  # the same requests again: cache hits
        assert all(decide(*c) is allow for c in calls[:50]), f"{kind} requests decided wrongly"
        result[f"{kind}_uncached_p50_us"] = round(statistics.median(uncached), 1)
        result[f"{kind}_uncached_p99_us"] = round(percentile(uncached, 0.99), 1)
        result[f"{kind}_cached_p50_us"] = round(statistics.median(cached), 2)
        result[f"{kind}_cached_p99_us"] = round(percentile(cached, 0.99), 2)

    stock = casbin.Enforcer(str(model), str(policy_path))
    stock.add_function("methodMatch", method_match)

    def stock_decide(subject: str, roles: tuple[str, ...], method: str, path: str) -> bool:
        user, _, tenant = subject.partition("@")
        where = (tenant,) if domains else ()
        for role in roles:  # token roles become links for this request, as gatekeeper does
            stock.add_grouping_policy(user, f"role:{role}", *where)
        request = (user, path, method, CLAIMS) if variant == "eval" else (user, *where, path, method)
        allowed: bool = stock.enforce(*request)
        for role in roles:
            stock.remove_grouping_policy(user, f"role:{role}", *where)
        return allowed

    for kind, allow in (("allow", True), ("deny", False)):
        calls = make_requests(rules, stock_samples, allow, rng)
        timings = time_calls(calls, stock_decide)
        result[f"stock_{kind}_p50_us"] = round(statistics.median(timings), 1)
    return result


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| rules | load s | allow p50 / p99 µs (uncached) | deny p50 / p99 µs (uncached) "
        "| cached p50 / p99 µs | stock allow p50 µs | stock deny p50 µs |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rules']:,} | {r['load_seconds']} | {r['allow_uncached_p50_us']} / "
            f"{r['allow_uncached_p99_us']} | {r['deny_uncached_p50_us']} / {r['deny_uncached_p99_us']} "
            f"| {r['deny_cached_p50_us']} / {r['deny_cached_p99_us']} | {r['stock_allow_p50_us']:,} "
            f"| {r['stock_deny_p50_us']:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--stock-samples", type=int, default=0,
                        help="default: 200 at 100 rules, fewer for bigger files (about 1 s each at 100k)")
    parser.add_argument("--variant", choices=("rbac", "eval", "domains"), default="rbac",
                        help="eval: every rule has an eval(p.rule) condition on the claims; "
                             "domains: tenants as Casbin domains (see the docstring)")
    parser.add_argument("--domains", action="store_true", help="the same as --variant domains")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.domains:
        args.variant = "domains"
    if args.out is None:
        suffix = "" if args.variant == "rbac" else f"-{args.variant}"
        args.out = ROOT / "bench" / "out" / f"policy{suffix}"
    rng = random.Random(1)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        stock_samples = args.stock_samples or max(3, min(200, 200_000 // (size * 10)))
        row = bench_size(size, args.samples, stock_samples, rng, args.variant)
        print(json.dumps(row), flush=True)
        rows.append(row)
    table = markdown(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
