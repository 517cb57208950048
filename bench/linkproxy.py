"""A loopback TCP forwarder that stands in for a network link: one shared rate (and optionally a delay)
for every connection through it, so a benchmark's registry traffic moves as it would over, say, 1 Gbit/s.

On loopback a 100 MiB download takes a tenth of a second and local hashing bounds every ratio; behind
this proxy the bytes on the wire cost what they cost on a real link. Each direction is its own link
(full duplex): all connections share its rate, first come first served, as packets share a wire.
The proxy works on TCP bytes, not HTTP, so keep-alive, ranges and multipart answers pass untouched.
It listens on 127.0.0.1 only and forwards to one upstream address on loopback.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Callable

#: bytes sent at a time: at 100 Mbit/s 32 KiB take 2.6 ms on the wire
CHUNK = 32 << 10


class Link:
    """One direction's wire: send(n) returns when n more bytes would have gone out at `rate` bytes/s."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0
        self._lock = threading.Lock()
        #: a sender woken late (a loaded machine) may catch up this much: the average rate stays the link's
        self._slack = max(4 * CHUNK / rate, 0.002)

    def send(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now - self._slack) + n / self.rate
            wait = self._free_at - now
        if wait > 0:
            time.sleep(wait)


class _Pair:
    """A client's connection and its upstream one: both closed once each direction has ended."""

    def __init__(self, *socks: socket.socket) -> None:
        self.socks = socks
        self.left = 2
        self.lock = threading.Lock()

    def one_side_done(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left:
                return
        for s in self.socks:
            s.close()


class LinkProxy:
    """127.0.0.1:<port> -> upstream (host:port on loopback), at `mbit` Mbit/s each way with `rtt_ms` of
    round-trip delay. `enabled = False` lets traffic through at loopback speed (a benchmark's set-up)."""

    def __init__(self, upstream: str, mbit: float, rtt_ms: float = 0.0) -> None:
        host, _, port = upstream.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the link proxy forwards to loopback only")
        self.upstream = ("127.0.0.1", int(port))
        self.down = Link(mbit * 1e6 / 8)
        self.up = Link(mbit * 1e6 / 8)
        self.delay = rtt_ms / 2000
        self.enabled = True
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    def ref(self, repo: str) -> str:
        return f"docker://{self.host}/{repo}"

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            closed = _Pair(client, server).one_side_done
            self._pipe(client, server, self.up, closed)
            self._pipe(server, client, self.down, closed)

    def _pipe(self, src: socket.socket, dst: socket.socket, link: Link, closed: Callable[[], None]) -> None:
        """src -> dst through `link`: a reader stamps each chunk with its arrival time, a writer sends it
        `delay` later and only as fast as the link allows."""
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            try:
                while data := src.recv(CHUNK):
                    chunks.put((time.monotonic(), data))
            except OSError:
                pass
            chunks.put((time.monotonic(), b""))

        def write() -> None:
            try:
                while True:
                    at, data = chunks.get()
                    if self.delay and self.enabled:
                        time.sleep(max(0.0, at + self.delay - time.monotonic()))
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    if self.enabled:
                        link.send(len(data))
                    dst.sendall(data)
            except OSError:
                pass
            finally:  # a side that stopped reading: unblock the other reader too
                try:
                    src.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                closed()

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()
