"""A registry that answered over plain HTTP is pinged over HTTP first next time (registry/schemes.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagetool.registry import client, openhint, schemes
from imagetool.registry.client import Client, ClientOptions
from tests.lib.registry import Registry


@pytest.fixture
def tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schemes each ping tried, in order; a cache directory of the test's own, no process-wide pings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(client, "_pinged", {})
    seen: list[str] = []
    real = Client._ping_once

    def spy(self: Client, base: str) -> object:
        seen.append(base.split("://")[0])
        return real(self, base)

    monkeypatch.setattr(Client, "_ping_once", spy)
    return seen


def test_plain_http_is_tried_first_once_the_registry_answered_over_it(plain_registry: Registry,
                                                                        tried: list[str]) -> None:
    assert Client(plain_registry.host, ClientOptions(tls_verify=False)).ping() == f"http://{plain_registry.host}"
    assert tried == ["https", "http"]
    client._pinged.clear()
    tried.clear()
    openhint.remember(f"http://{plain_registry.host}", False)  # else no ping at all (test_open_hint.py)
    assert Client(plain_registry.host, ClientOptions(tls_verify=False)).ping() == f"http://{plain_registry.host}"
    assert tried == ["http"]  # no TLS attempt this time


def test_the_hint_is_not_read_with_verification_on(plain_registry: Registry, tried: list[str]) -> None:
    schemes.remember(plain_registry.host, True)
    with pytest.raises(Exception, match="TLS"):
        Client(plain_registry.host, ClientOptions()).ping()
    assert tried == ["https"]


def test_a_stale_hint_falls_back_to_https_and_is_forgotten(tls_registry: Registry, tried: list[str]) -> None:
    schemes.remember(tls_registry.host, True)
    assert schemes.speaks_http(tls_registry.host)
    assert Client(tls_registry.host, ClientOptions(tls_verify=False)).ping() == f"https://{tls_registry.host}"
    assert tried == ["http", "https"]
    assert not schemes.speaks_http(tls_registry.host)


def test_a_hint_that_is_not_this_users_own_is_ignored(tried: list[str]) -> None:
    schemes.remember("registry.example:5000", True)
    path = Path(os.environ["XDG_CACHE_HOME"]) / "imagetool" / "plain-http" / "registry.example:5000"
    assert schemes.speaks_http("registry.example:5000")
    os.chown(path, 12345, 12345)
    assert not schemes.speaks_http("registry.example:5000")
