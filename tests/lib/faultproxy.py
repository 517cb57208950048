"""An HTTP proxy in front of a real registry that counts requests and injects faults a real one cannot produce.

Faults are rules matched by method and path regex, each good for `times` requests:
  status=503 / 429 (+ headers such as Retry-After): answered by the proxy, never forwarded
  reset_after=N: forwarded, then the connection is reset after N bytes of the response body
  reset_request=True: the request body is cut off (connection reset) before reaching the registry
  cut_request_after=N: the first N bytes of the request body reach the registry, then both connections
                    are cut (a request body broken off mid-way)
  redirect_to=BASE: answered with 307 to BASE + the request path (as a registry whose storage
                    serves blobs from elsewhere does)
  status=200 + body=...: answered with that body (an API the registry behind lacks, such as
                    OCI 1.1 referrers); Content-Type comes from `headers`
The Host header goes upstream unchanged, so the registry's Location headers point at the proxy.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Rule:
    method: str | None
    path: re.Pattern[str] | None
    times: int
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset_after: int | None = None
    reset_request: bool = False
    cut_request_after: int | None = None
    redirect_to: str | None = None
    body: bytes | None = None
    strip_range: bool = False       # forwarded without its Range header (a registry that ignores ranges)
    first_range: bool = False       # forwarded with only the first range of a multi-range request
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method)
                and (self.path is None or bool(self.path.search(path))))


@dataclass
class Record:
    method: str
    path: str
    status: int
    body_bytes: int
    fault: str = ""
    authorization: bool = False     # whether the request carried an Authorization header
    range: str = ""                 # the request's Range header, if any
    sent: int = 0                   # response body bytes passed on to the client


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.records: list[Record] = []
        #: response bytes per second per connection (None: as fast as loopback), to stand in for a real link
        self.rate: int | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def ref(self, repo: str) -> str:
        return f"docker://{self.host}/{repo}"

    def add(self, method: str | None = None, path: str | None = None, *, times: int = 1, status: int | None = None,
            headers: dict[str, str] | None = None, reset_after: int | None = None,
            reset_request: bool = False, redirect_to: str | None = None, body: bytes | None = None,
            strip_range: bool = False, first_range: bool = False, cut_request_after: int | None = None) -> Rule:
        rule = Rule(method, re.compile(path) if path else None, times, status, dict(headers or {}), reset_after,
                    reset_request, cut_request_after, redirect_to, body, strip_range, first_range)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.records.clear()

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    rule.hits += 1
                    return rule
        return None

    def _record(self, rec: Record) -> None:
        rec.authorization = bool(getattr(threading.current_thread(), "authorization", False))
        rec.range = str(getattr(threading.current_thread(), "range_header", ""))
        with self._lock:
            self.records.append(rec)

    def uploaded_bytes(self) -> int:
        """Request body bytes sent to blob upload endpoints (PATCH/PUT under /blobs/uploads/)."""
        return sum(r.body_bytes for r in self.records
                   if r.method in ("PATCH", "PUT", "POST") and "/blobs/uploads/" in r.path)

    def response_bytes(self, method: str = "GET", path: str = "/blobs/") -> int:
        """Response body bytes sent for requests whose path contains `path`."""
        with self._lock:
            return sum(r.sent for r in self.records if r.method == method and path in r.path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body_chunks(self) -> Iterator[bytes]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return
                        yield self.rfile.read(size)
                        self.rfile.readline()
                else:
                    left = int(self.headers.get("Content-Length") or 0)
                    while left > 0:
                        data = self.rfile.read(min(left, 1 << 20))
                        if not data:
                            return
                        left -= len(data)
                        yield data

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _answer(self, rule: Rule) -> None:
                size = sum(len(c) for c in self._body_chunks())
                body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                if rule.status == 429:
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}'
                if rule.body is not None:
                    body = rule.body
                # recorded before the answer goes out, so a client that has its answer finds the record
                proxy._record(Record(self.command, self.path, int(rule.status or 503), size, "status"))
                self.send_response(int(rule.status or 503))
                for k, v in rule.headers.items():
                    self.send_header(k, v)
                if not any(k.lower() == "content-type" for k in rule.headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _forward(self, rule: Rule | None) -> None:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                counted = [0]

                def body() -> Iterator[bytes]:
                    cut = rule.cut_request_after if rule is not None else None
                    for chunk in self._body_chunks():
                        if cut is not None and counted[0] + len(chunk) >= cut:
                            counted[0], part = cut, chunk[:cut - counted[0]]
                            if part:
                                yield part
                            raise ConnectionResetError("injected request cut")
                        counted[0] += len(chunk)
                        if rule is not None and rule.reset_request and counted[0] > 0:
                            raise ConnectionResetError("injected request reset")
                        yield chunk

                has_body = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() == "range" and rule is not None and rule.first_range:
                            v = v.split(",")[0]
                        if k.lower() not in HOP_HEADERS and k.lower() != "content-length" and not (
                                k.lower() == "range" and rule is not None and rule.strip_range):
                            conn.putheader(k, v)
                    if has_body:
                        conn.putheader("Transfer-Encoding", "chunked")
                    conn.endheaders()
                    if has_body:
                        for chunk in body():
                            if chunk:
                                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        conn.send(b"0\r\n\r\n")
                    resp = conn.getresponse()
                except ConnectionResetError:
                    conn.close()
                    cut = rule is not None and rule.cut_request_after is not None
                    fault = "cut_request" if cut else "reset_request"
                    proxy._record(Record(self.command, self.path, 0, counted[0], fault))
                    self._reset()
                    return
                # recorded before the answer goes out, so a client that has its answer finds the record
                record = Record(self.command, self.path, resp.status, counted[0])
                proxy._record(record)
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                sent = 0
                started = time.monotonic()
                limit = rule.reset_after if rule is not None else None
                while True:
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    if limit is not None and sent + len(chunk) > limit:
                        self.wfile.write(chunk[: limit - sent])
                        self.wfile.flush()
                        record.fault = "reset_after"
                        conn.close()
                        self._reset()
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    record.sent = sent
                    if proxy.rate:
                        time.sleep(max(0.0, started + sent / proxy.rate - time.monotonic()))
                conn.close()
                self.close_connection = True

            def _handle(self) -> None:
                threading.current_thread().authorization = "Authorization" in self.headers  # type: ignore[attr-defined]
                threading.current_thread().range_header = self.headers.get("Range", "")  # type: ignore[attr-defined]
                rule = proxy._take(self.command, self.path)
                if rule is not None and rule.redirect_to:
                    rule = Rule(None, None, 0, 307, {"Location": rule.redirect_to + self.path})
                if rule is not None and rule.status is not None:
                    self._answer(rule)
                else:
                    self._forward(rule)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        return Handler
