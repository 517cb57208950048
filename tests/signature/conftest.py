"""Fixtures for signing tests: GPG homes, policies, and the containers/image signature vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lib.gpg import GPGHome, make_home, remove_home

#: containers/image's signature vectors, copied into testdata/ (its README names source, commit and license)
FIXTURES = Path(__file__).resolve().parents[2] / "testdata" / "containers-image-signature"
GPG_FIXTURE_FP = "08CD26E446E2E95249B7A405E932F44B23E8DD43"


@pytest.fixture(scope="session")
def gpg_session() -> Iterator[GPGHome]:
    home = make_home()
    yield home
    remove_home(home)


@pytest.fixture(scope="session")
def other_gpg() -> Iterator[GPGHome]:
    """A second, unrelated keyring: its keys are untrusted by policies made from gpg_session."""
    home = make_home()
    yield home
    remove_home(home)


@pytest.fixture
def gnupg(gpg_session: GPGHome, monkeypatch: pytest.MonkeyPatch) -> GPGHome:
    monkeypatch.setenv("GNUPGHOME", gpg_session.home)
    return gpg_session


def write_policy(path: Path, default: list[dict[str, Any]], transports: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"default": default}
    if transports:
        doc["transports"] = transports
    path.write_text(json.dumps(doc, indent=2))
    return str(path)
