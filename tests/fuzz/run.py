"""Run the coverage-guided fuzz targets (atheris, libFuzzer underneath).

    python -m tests.fuzz.run paths                         # one target until it finds something
    python -m tests.fuzz.run paths -max_total_time=600     # … any libFuzzer flag after the name
    python -m tests.fuzz.run --all --seconds 20            # every target in turn, bounded (CI)
    python -m tests.fuzz.run --write-seeds                 # regenerate tests/fuzz/seeds/

Every run starts from the committed seeds (tests/fuzz/seeds/TARGET/) and grows a working corpus
in tests/fuzz/corpus/TARGET/ (git-ignored, kept between runs); an input that breaks an invariant
is written to tests/fuzz/artifacts/TARGET-crash-… (git-ignored) and the run fails. Replay one
with ``python -m tests.fuzz.run TARGET tests/fuzz/artifacts/FILE``; once fixed, copy it into the
seeds so the test suite replays it for good (test_properties.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAMES = ("paths", "redirects", "bearer", "cookie", "forward_auth", "config")
# Instrumented for coverage feedback: our package, and PyYAML's pure-Python parser for the config.
INSTRUMENTED = ["gatekeeper", "yaml"]


def fuzz_one(name: str, libfuzzer_args: list[str]) -> None:
    import atheris  # only this command needs it: the fuzz extra (pip install -e '.[fuzz]')

    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS
    target = TARGETS[name]
    target(b"")  # build the subject (keys, seeds) before libFuzzer starts its clock
    corpus = HERE / "corpus" / name
    artifacts = HERE / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    seeds = HERE / "seeds" / name
    inputs = [arg for arg in libfuzzer_args if not arg.startswith("-")]
    flags = [arg for arg in libfuzzer_args if arg.startswith("-")]
    if not inputs:  # fuzzing (not replaying a file): grow the corpus from the seeds
        inputs = [str(corpus), *([str(seeds)] if seeds.is_dir() else [])]
    argv = [sys.argv[0], f"-artifact_prefix={artifacts}/{name}-", "-timeout=20",
            "-rss_limit_mb=3072", "-max_len=16384", *flags, *inputs]
    atheris.Setup(argv, target)
    atheris.Fuzz()


def fuzz_all(seconds: int, names: list[str], seed: int = 0) -> int:
    failed = []
    for name in names:
        started = time.monotonic()
        print(f"== fuzz {name}: {seconds} s", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={seconds}",
             f"-seed={seed}", "-print_final_stats=1"], cwd=ROOT, check=False, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        output = result.stdout
        stats = [line for line in output.splitlines() if line.startswith(("stat::number", "#"))]
        print("\n".join(stats[-2:]), flush=True)
        if result.returncode != 0:
            failed.append(name)
            start = output.find("=== Uncaught Python exception")
            print(output[start if start >= 0 else -6000 :][:8000], flush=True)
        print(f"== fuzz {name}: exit {result.returncode} after {time.monotonic() - started:.0f} s",
              flush=True)
    if failed:
        print(f"fuzz targets that broke an invariant: {', '.join(failed)}", flush=True)
    print(f"fuzz: {len(names) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


def write_seeds() -> None:
    from tests.fuzz.seeds_writer import write_all

    write_all(HERE / "seeds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", choices=NAMES)
    parser.add_argument("--all", action="store_true", help="every target in turn, each bounded")
    parser.add_argument("--seconds", type=int, default=20, help="per target, with --all")
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated targets, with --all")
    parser.add_argument("--seed", type=int, default=0,
                        help="libFuzzer's seed, with --all (0: a new one each run; CI's short run "
                        "fixes one, so what it finds can be replayed)")
    parser.add_argument("--write-seeds", action="store_true")
    args, rest = parser.parse_known_args()
    if args.write_seeds:
        write_seeds()
        return 0
    if args.all:
        return fuzz_all(args.seconds, [n for n in args.only.split(",") if n], args.seed)
    if args.target is None:
        parser.error("name a target, or --all")
    fuzz_one(args.target, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
