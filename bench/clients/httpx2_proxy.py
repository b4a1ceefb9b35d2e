"""Benchmark proxy: the httpx proxy of httpx_proxy.py, on httpx2 (the maintained httpx fork).

    uvicorn --app-dir bench/clients httpx2_proxy:app --loop uvloop --http httptools --no-access-log

httpcore2 2.16 imports ``sniffio`` once at module load (pydantic/httpx2#1132), so unlike
httpx 0.28 + httpcore 1.0 it does not pay a failed import per request when sniffio is absent.
"""

from __future__ import annotations

import httpx2
from httpx_proxy import make_app

app = make_app(httpx2)
