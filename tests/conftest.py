"""Shared fixtures: a private local store for every test, and test images."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins: list[str] = ["tests.lib.registry", "tests.lib.debian", "tests.lib.rootless", "tests.lib.probes",
                             "tests.lib.foreign"]


@pytest.fixture(autouse=True)
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own local store ($IMAGETOOL_STORE) and never touches the user's."""
    store = tmp_path / "local-store"
    monkeypatch.setenv("IMAGETOOL_STORE", str(store))
    return store
