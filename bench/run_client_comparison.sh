#!/usr/bin/env bash
# Upstream client comparison: nginx alone, then one pure-ASGI proxy per upstream client,
# all under uvicorn (uvloop + httptools, 1 worker), wrk -t1 at -c32 and -c4, 3 interleaved
# rounds, medians. About 10 minutes with the defaults. Extra arguments go to harness.py run
# (e.g. --duration 2 --warmup 1 --rounds 1 for a smoke run).
#
# httpx is measured twice: as installed in the venv (no sniffio: httpcore 1.0 then pays a failed
# `import sniffio` on every lock setup, encode/httpcore#1103) and with sniffio on PYTHONPATH from
# a throwaway --target dir, so the shared venv is left untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SNIFFIO_DIR=${SNIFFIO_DIR:-/tmp/gk-bench-sniffio}
OUT=${OUT:-bench/out}

if [ ! -d "$SNIFFIO_DIR/sniffio" ]; then
    "$PY" -m pip install --quiet --target "$SNIFFIO_DIR" sniffio
fi

uvicorn_app() {  # uvicorn_app MODULE -> the server command line for the harness
    echo "{python} -m uvicorn --app-dir bench/clients $1:app --host 127.0.0.1 --port {port}" \
         "--loop uvloop --http httptools --workers 1 --no-access-log --log-level warning"
}

"$PY" bench/harness.py run \
    --scenario "nginx-direct=@upstream" \
    --scenario "httpx=$(uvicorn_app httpx_proxy)" \
    --scenario "httpx+sniffio=$(uvicorn_app httpx_proxy)" \
    --env "httpx+sniffio:PYTHONPATH=$SNIFFIO_DIR" \
    --scenario "httpx2=$(uvicorn_app httpx2_proxy)" \
    --scenario "aiohttp=$(uvicorn_app aiohttp_proxy)" \
    --connections 32,4 --duration 8 --warmup 2 --rounds 3 \
    --log-dir "$OUT/logs" --json "$OUT/clients.json" --markdown "$OUT/clients.md" \
    "$@"
