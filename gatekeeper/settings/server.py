"""server: which HTTP/1.1 protocol the public and admin listeners run under uvicorn."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gatekeeper.settings.common import FrozenModel

HttpProtocol = Literal["gatekeeper", "uvicorn"]


class ServerSettings(FrozenModel):
    http: HttpProtocol = Field(
        default="gatekeeper",
        description="HTTP/1.1 protocol: `gatekeeper` (its own, on httptools, written for a proxy) "
        "or `uvicorn` (uvicorn's httptools protocol with gatekeeper's guards). Both enforce the "
        "same limits; uvicorn stays the process runner either way.")
