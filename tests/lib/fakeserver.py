"""A scripted loopback HTTP(S) server that records what reaches it: stands in for a hostile registry or
token server (a challenge no real registry sends, a certificate for the wrong name).

`answer(method, path)` returns (status, headers, body). With `tls_names` the server speaks HTTPS with a
certificate for those names from a fresh trustme CA; `ca_dir` then holds that CA as ca.crt (a --cert-dir).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

Answer = Callable[[str, str], tuple[int, dict[str, str], bytes]]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


class FakeServer:
    def __init__(self, answer: Answer, *, tls_names: tuple[str, ...] = (), ca_dir: Path | None = None) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.tls = bool(tls_names)
        if tls_names:
            import trustme

            assert ca_dir is not None
            ca = trustme.CA()
            ca_dir.mkdir(parents=True, exist_ok=True)
            ca.cert_pem.write_to_path(str(ca_dir / "ca.crt"))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(*tls_names).configure_cert(ctx)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.ca_dir = ca_dir
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                with server._lock:
                    server.seen.append(Seen(self.command, self.path, self.headers.get("Authorization")))
                status, headers, body = server.answer(self.command, self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = _any  # noqa: N815 - http.server's naming

        return Handler
