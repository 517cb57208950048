"""Bounded waits and visible retries: a silent server, a refused port, an unknown host, --command-timeout."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.registry import Registry, free_port

pytestmark = pytest.mark.usefixtures("registry_env")

RETRY_LINE = "Failed, retrying in "


class SilentServer:
    """Accepts TCP connections on loopback and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _timed(*args: str, timeout: float = 120) -> tuple[float, str, int]:
    start = time.monotonic()
    proc = imagetool(*args, check=False, timeout=timeout)
    return time.monotonic() - start, proc.stderr, proc.returncode


def test_command_timeout_bounds_a_silent_server(silent: SilentServer) -> None:
    start = time.monotonic()
    proc = imagetool("--command-timeout", "2s", "inspect", f"docker://{silent.host}/some/image", check=False,
                     timeout=60)
    took = time.monotonic() - start
    line = one_line_error(proc)
    assert "timed out" in line and "2s" in line, line
    assert took < 10, took


@pytest.mark.parametrize("tls", ["verify", "off"])
def test_default_timeouts_bound_a_silent_server(silent: SilentServer, tls: str) -> None:
    """No answer to the TLS handshake (or the plain-HTTP request): a timeout, not retried, no hang."""
    flags = ["--tls-verify=false"] if tls == "off" else []
    took, stderr, rc = _timed("inspect", *flags, f"docker://{silent.host}/some/image", timeout=90)
    assert rc != 0
    assert "timed out" in stderr and RETRY_LINE not in stderr, stderr
    assert took < 30, took


def test_response_that_never_starts_times_out() -> None:
    """A server that accepts the request and never answers: the read timeout ends the wait."""
    from imagetool.registry.http import Session, TLSConfig, TransportError

    server = SilentServer()
    try:
        session = Session(TLSConfig(False, None, True), "imagetool-test", server.host)
        start = time.monotonic()
        with pytest.raises(TransportError) as err:
            session.get(f"http://{server.host}/v2/", timeout=(2.0, 1.0))
        assert time.monotonic() - start < 5
        assert "timed out" in str(err.value)
    finally:
        server.close()


def test_a_refused_port_fails_fast_and_says_it_retries() -> None:
    port = free_port()
    took, stderr, rc = _timed("inspect", f"docker://127.0.0.1:{port}/some/image", timeout=60)
    assert rc != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    retries = [line for line in lines if RETRY_LINE in line]
    assert len(retries) == 3, stderr
    assert retries[0].startswith("Failed, retrying in 250ms ... (1/3). Error: ") and "refused" in retries[0], stderr
    assert retries[2].startswith("Failed, retrying in 1s ... (3/3). Error: "), stderr
    assert len(lines) == 4 and "refused" in lines[-1] and "Traceback" not in stderr, stderr
    assert took < 8, took
    took, stderr, rc = _timed("inspect", "--retry-times", "0", f"docker://127.0.0.1:{port}/some/image")
    assert rc != 0 and RETRY_LINE not in stderr


def test_debug_shows_the_connection_error_behind_a_failure() -> None:
    """The one line names the failure; --debug's traceback goes down to the socket's own error."""
    port = free_port()
    args = ("inspect", "--retry-times", "0", f"docker://127.0.0.1:{port}/some/image")
    line = one_line_error(imagetool(*args, check=False))
    assert line == f"imagetool: pinging registry 127.0.0.1:{port}: [Errno 111] Connection refused"
    debug = imagetool("--debug", *args, check=False)
    assert debug.returncode != 0
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in debug.stderr
    assert "The above exception was the direct cause of the following exception" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == \
        f"imagetool.registry.errors.RegistryUnreachable: pinging registry 127.0.0.1:{port}: " \
        "[Errno 111] Connection refused"


def test_an_unknown_host_is_not_retried() -> None:
    name = "no-such-host.invalid"
    try:
        socket.getaddrinfo(name, 443)
        resolver = "answers"
    except socket.gaierror as err:
        resolver = "not found" if err.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else "down"
    took, stderr, rc = _timed("inspect", f"docker://{name}/some/image", timeout=90)
    assert rc != 0 and "Traceback" not in stderr, stderr
    if resolver == "not found":  # the resolver said the name does not exist: that cannot heal
        assert RETRY_LINE not in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1 and name in stderr, stderr
        assert took < 10, took
    else:  # no resolver reachable (a sandbox): a temporary failure, retried visibly
        assert RETRY_LINE in stderr or "timed out" in stderr, stderr


def test_a_rejected_certificate_is_not_retried(tls_registry: Registry) -> None:
    took, stderr, rc = _timed("inspect", f"docker://{tls_registry.host}/some/image")
    assert rc != 0 and "certificate verify failed" in stderr and RETRY_LINE not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_wrong_credentials_are_not_retried(tls_registry: Registry, tmp_path: object) -> None:
    took, stderr, rc = _timed("inspect", "--cert-dir", str(tls_registry.cert_dir), "--creds", "tester:wrong",
                              f"docker://{tls_registry.host}/some/image")
    assert rc != 0 and "401" in stderr and RETRY_LINE not in stderr, stderr


@pytest.mark.parametrize("text", ["2", "1x", "s", "-"])
def test_command_timeout_must_be_a_go_duration(text: str) -> None:
    proc = imagetool("--command-timeout", text, "inspect", "oci:/nonexistent:x", check=False)
    assert proc.returncode == 2 and "duration" in proc.stderr, proc.stderr
