"""A registry that answered /v2/ anonymously is not pinged by the next command (registry/openhint.py): its
first request stands in for the ping, and a hint the registry no longer bears out is forgotten."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from imagetool.errors import ImagetoolError, RegistryError
from imagetool.registry import client, openhint, schemes
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.errors import RegistryUnreachable
from tests.lib.registry import Registry, free_port


@pytest.fixture
def pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The base URLs each ping tried; a cache directory of the test's own, no process-wide pings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(client, "_pinged", {})
    monkeypatch.setattr(client, "_guessed", set())
    seen: list[str] = []
    real = Client._ping_once

    def spy(self: Client, base: str) -> object:
        seen.append(base)
        return real(self, base)

    monkeypatch.setattr(Client, "_ping_once", spy)
    return seen


def _next_process() -> None:
    client._pinged.clear()
    client._guessed.clear()


def test_the_next_process_asks_without_a_ping(plain_registry: Registry, pings: list[str]) -> None:
    base = f"http://{plain_registry.host}"
    opts = ClientOptions(tls_verify=False)
    with pytest.raises(ImagetoolError, match="NAME_UNKNOWN"):
        Client(plain_registry.host, opts).list_tags("open-hint/none")
    assert pings == [f"https://{plain_registry.host}", base]
    assert openhint.is_open(base)
    _next_process()
    pings.clear()
    with pytest.raises(ImagetoolError, match="NAME_UNKNOWN"):  # the registry's own 404 answers
        Client(plain_registry.host, opts).list_tags("open-hint/none")
    assert pings == []
    assert openhint.is_open(base)


def test_a_registry_that_wants_credentials_now_is_pinged_next_time(token_registry: Registry,
                                                                   pings: list[str]) -> None:
    base = f"http://{token_registry.host}"
    schemes.remember(token_registry.host, True)
    openhint.remember(base, True)  # as if it had answered anonymously before
    c = Client(token_registry.host, ClientOptions(tls_verify=False, creds=(token_registry.creds.split(":", 1)[0],
                                                                          token_registry.creds.split(":", 1)[1])))
    c.check_login()  # 401 with a challenge, a token, the request again
    assert pings == []
    assert c.auth.token_requests == 1
    assert not openhint.is_open(base)
    _next_process()
    Client(token_registry.host, ClientOptions(tls_verify=False)).ping()
    assert pings == [base]  # plain HTTP first (schemes.py), and no open hint


def test_a_hint_for_a_port_nobody_listens_on_ends_as_without_it(pings: list[str]) -> None:
    host = f"127.0.0.1:{free_port()}"
    openhint.remember(f"http://{host}", True)
    openhint.remember(f"https://{host}", True)
    with pytest.raises(RegistryUnreachable, match=f"pinging registry {host}"):
        Client(host, ClientOptions(tls_verify=False, retry_times=0)).get_manifest("a/b", "v1")
    assert pings == [f"https://{host}", f"http://{host}"]  # the ping, as without a hint
    assert not openhint.is_open(f"https://{host}")


class _NotARegistry(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotARegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_hint_for_something_else_is_forgotten_and_the_ping_says_what_it_is(web_server: str,
                                                                            pings: list[str]) -> None:
    base = f"http://{web_server}"
    schemes.remember(web_server, True)
    openhint.remember(base, True)
    with pytest.raises(RegistryError, match="does not look like a registry"):
        Client(web_server, ClientOptions(tls_verify=False, retry_times=0)).get_manifest("a/b", "v1")
    assert pings == [base, f"https://{web_server}"]  # the hinted scheme first, then the other (schemes.py)
    assert not openhint.is_open(base)


def test_a_hint_that_is_not_this_users_own_is_ignored(pings: list[str]) -> None:
    import os

    openhint.remember("http://registry.example:5000", True)
    assert openhint.is_open("http://registry.example:5000")
    path = Path(os.environ["XDG_CACHE_HOME"]) / "imagetool" / "open-registries" / "http_registry.example:5000"
    os.chown(path, 12345, 12345)
    assert not openhint.is_open("http://registry.example:5000")
