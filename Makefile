# Two commands do all the set-up on a fresh machine:
#   make demo   — dev issuer + echo app + gatekeeper, with ready-made tokens
#   make test   — lint, type-check and the whole test suite (real servers on loopback)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint bench soak fuzz fuzz-short lock clean

# Lint and tests run on exactly the versions CI and the image get: every package from the hashed
# requirements-dev.lock (the image's requirements.lock plus the test tools), then the project
# itself without touching them.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/gatekeeper demo

lint: $(VENV)/.installed
	$(PY) -m ruff check gatekeeper tests bench
	$(PY) -m mypy   # gatekeeper/ and tests/: what and how strictly is pyproject's [tool.mypy]
	$(VENV)/bin/lint-imports --no-cache   # the layers, no cycles, one owner per library: pyproject.toml

# The suite in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them (its
# module-scoped servers are started once); tests/README.md has the figures.
TEST_WORKERS ?= auto
test: lint   # the test OpenID provider's node packages too, when missing or older than the lock file
	[ tests/oidc/node_modules/.package-lock.json -nt tests/oidc/package-lock.json ] || \
	  npm ci --prefix tests/oidc --no-audit --no-fund
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.installed   # needs wrk and nginx (apt-get install wrk nginx-light)
	$(PY) bench/run_gatekeeper.py

# Mixed traffic through two workers for SOAK_SECONDS (default 10 min); see bench/soak.py.
SOAK_SECONDS ?= 600
soak: $(VENV)/.installed
	$(PY) bench/soak.py --seconds $(SOAK_SECONDS)

# Coverage-guided fuzzing (atheris) of the canonicalizer, redirects, bearer tokens, session
# cookies, forward-auth headers and the config loader: FUZZ_SECONDS per target (default 10 min
# each, ~1 h in all). The corpus grows in tests/fuzz/corpus/ and is reused by the next run;
# an input that breaks an invariant lands in tests/fuzz/artifacts/. See tests/fuzz/run.py.
FUZZ_SECONDS ?= 600
$(VENV)/.fuzz-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet --only-binary :all: 'atheris>=3.0,<4'   # = pyproject's fuzz extra
	touch $@

fuzz: $(VENV)/.fuzz-installed
	$(PY) -m tests.fuzz.run --all --seconds $(FUZZ_SECONDS)

fuzz-short: $(VENV)/.fuzz-installed   # what .ci/run does after make test: 20 s per target
	$(PY) -m tests.fuzz.run --all --seconds 20 --seed 1

# The pinned, hashed dependencies, resolved for every Python 3.11 (uv's universal mode keeps the
# markers, e.g. async-timeout before 3.11.3): requirements-dev.lock (runtime + test tools, what
# `make test` installs) first, then requirements.lock (runtime + tracing, what the image installs)
# constrained by it, so both name the same version of every package. Run it to take updates.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --no-header --quiet
lock: $(VENV)/.installed
	$(PY) -m pip install --quiet uv
	{ sed -n '/^#/p;/^[^#]/q' requirements-dev.lock; $(UV_COMPILE) --extra test; } > requirements-dev.lock.new
	{ sed -n '/^#/p;/^[^#]/q' requirements.lock; \
	  $(UV_COMPILE) --extra tracing --constraint requirements-dev.lock.new; } > requirements.lock.new
	sed -i 's/requirements-dev\.lock\.new/requirements-dev.lock/' requirements.lock.new
	mv requirements-dev.lock.new requirements-dev.lock
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
