"""The ``server`` section (gatekeeper/settings/server.py): which HTTP/1.1 protocol uvicorn runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings


@pytest.mark.parametrize("name", ["gatekeeper", "uvicorn"])
def test_either_protocol_may_be_chosen_in_the_file_or_the_environment(tmp_path: Path,
                                                                      name: str) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(f"server:\n  http: {name}\n")
    assert load_settings(path, environ={}).server.http == name
    assert load_settings(None, environ={"GATEKEEPER_SERVER__HTTP": name}).server.http == name


def test_gatekeepers_own_protocol_is_the_default() -> None:
    assert Settings().server.http == "gatekeeper"


def test_another_protocol_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("server:\n  http: h11\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert [p.split(":")[0] for p in refused.value.problems] == ["server.http"]
