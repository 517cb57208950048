"""One pooled HTTP session per registry endpoint (http.client keep-alive connections), with its TLS
material (certs.d, mTLS) and timeouts.

TLS is verified by default. `tls_verify=False` allows unverified HTTPS and, when the
server does not speak TLS at all, plain HTTP (as containers/image does for insecure
registries). CA files (*.crt) and client pairs (*.cert + *.key) come from `cert_dir`
or /etc/containers/certs.d/<host:port>/ (and /etc/docker/certs.d/).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from imagetool.errors import RegistryError

T = TypeVar("T")

CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
#: (connect, read) seconds. Connect bounds the TCP connection and then the TLS handshake; read bounds
#: the wait for an answer to start and each quiet spell within it (a registry writing a big blob may
#: be quiet for a while). Neither is retried: a server that said nothing for that long will not heal.
TIMEOUT = (10.0, 120.0)
POOL_SIZE = 32


def endpoint_host(domain: str) -> str:
    """The host to connect to for a reference's domain (docker.io's API lives elsewhere)."""
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TLSConfig:
    """How to reach one registry: `verify` off or on, extra CA files (`cas`, trusted beside the
    system's), a client pair `cert`."""

    verify: bool = True
    cert: tuple[str, str] | None = None
    insecure: bool = False           # the user turned verification off: plain HTTP allowed
    cas: tuple[str, ...] = ()

    @classmethod
    def for_host(cls, host: str, tls_verify: bool | None, cert_dir: str | None) -> TLSConfig:
        dirs = [cert_dir] if cert_dir else [os.path.join(d, host) for d in CERTS_D]
        cas: list[str] = []
        cert: tuple[str, str] | None = None
        for d in dirs:
            if not d or not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                path = os.path.join(d, name)
                if name.endswith(".crt"):
                    cas.append(path)
                elif name.endswith(".cert") and cert is None:
                    key = path[: -len(".cert")] + ".key"
                    if os.path.exists(key):
                        cert = (path, key)
        if tls_verify is False:
            return cls(False, cert, True)
        return cls(True, cert, False, tuple(cas))


def _context(tls: TLSConfig, host: str) -> ssl.SSLContext:
    """The TLS context for a registry: the system CAs plus each certs.d CA file, loaded in memory
    (no bundle file is written anywhere another user could plant one)."""
    if not tls.verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    for path in tls.cas:
        try:
            data = Path(path).read_text(encoding="ascii", errors="replace")
            if data.strip():
                ctx.load_verify_locations(cadata=data)
        except (ssl.SSLError, OSError, ValueError) as err:
            raise RegistryError(f"loading CA certificates {path} for {host}: {short_reason(err)}") from err
    return ctx


class TransportError(OSError):
    """A request that got no HTTP answer (refused, reset, timed out, TLS failure).

    `permanent`: trying again cannot help (the name does not exist, the certificate is rejected,
    the server stayed silent past the timeout).
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TLSFailure(TransportError):
    pass


#: getaddrinfo answers that mean the name has no address (EAI_AGAIN, no resolver reachable, may heal)
_NAME_NOT_FOUND = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL", "EAI_ADDRFAMILY")
                   if hasattr(socket, n)}


def _transport_error(err: BaseException, netloc: str, timeout: tuple[float, float], connected: bool) \
        -> TransportError:
    """The TransportError for an exception of http.client, ssl or socket, classified for retries."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return TLSFailure(short_reason(err), permanent=True)
    if isinstance(err, TimeoutError):
        if connected:
            return TransportError(f"timed out: no answer from {netloc} within {timeout[1]:g}s", permanent=True)
        return TransportError(f"timed out connecting to {netloc} (no answer within {timeout[0]:g}s)", permanent=True)
    if isinstance(err, ssl.SSLError):
        return TLSFailure(short_reason(err))
    if isinstance(err, socket.gaierror):
        host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
        reason = err.strerror or str(err)
        return TransportError(f"looking up {host}: {reason}", permanent=err.errno in _NAME_NOT_FOUND)
    return TransportError(short_reason(err))


class _Pool:
    """Idle keep-alive connections per (scheme, host:port); a connection is reused only once drained."""

    def __init__(self, context: Callable[[], ssl.SSLContext], proxy: str | None) -> None:
        self.context = context
        self.proxy = urllib.parse.urlsplit(proxy) if proxy else None
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, scheme: str, netloc: str) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            while idle:
                conn = idle.pop()
                if conn.sock is not None and not _dropped(conn.sock):
                    return conn
                conn.close()
        return None

    def give_back(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((scheme, netloc), [])
            if len(idle) < POOL_SIZE:
                idle.append(conn)
                return
        conn.close()

    def connect(self, scheme: str, netloc: str, timeout: tuple[float, float]) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        proxy = self.proxy.netloc.rpartition("@")[2] if self.proxy is not None else ""
        if proxy and scheme == "https":  # a CONNECT tunnel through the proxy
            conn = http.client.HTTPSConnection(proxy, timeout=timeout[0], context=self.context())
            conn.set_tunnel(netloc)
        elif proxy:  # plain HTTP: the proxy is asked for the absolute URL
            conn = http.client.HTTPConnection(proxy, timeout=timeout[0])
        elif scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=timeout[0], context=self.context())
        else:
            conn = http.client.HTTPConnection(netloc, timeout=timeout[0])
        conn._create_connection = _create_connection  # type: ignore[attr-defined]
        try:
            conn.connect()
        except BaseException:
            conn.close()  # a half-made TLS connection keeps its socket otherwise
            raise
        assert conn.sock is not None
        conn.sock.settimeout(timeout[1])
        return conn


def _create_connection(address: tuple[str, int], *args: Any) -> socket.socket:
    """socket.create_connection with an ASCII host passed as bytes: getaddrinfo then skips the IDNA codec,
    whose import (unicodedata, stringprep) costs a small command more than the connection does."""
    host, port = address
    return socket.create_connection((host.encode() if host.isascii() else host, port), *args)  # type: ignore[arg-type]


def _dropped(sock: Any) -> bool:
    """True when an idle connection was closed by the server (readable at EOF) or has stray bytes."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Body:
    """A response body read from its connection; the connection goes back to the pool only when drained."""

    def __init__(self, resp: http.client.HTTPResponse, done: Callable[[bool], None]) -> None:
        self._resp = resp
        self._on_done: Callable[[bool], None] | None = done

    def read(self, n: int | None = None) -> bytes:
        return self._reading(self._resp.read) if n is None or n < 0 else self._reading(self._resp.read, n)

    def readinto(self, buf: memoryview) -> int:
        """read() into the caller's buffer (the socket fills it: no bytes object per read)."""
        return self._reading(self._resp.readinto, buf)

    def _reading(self, op: Callable[..., T], *args: Any) -> T:
        """A read of the body: a transport failure closes it, the end hands the connection back."""
        try:
            result = op(*args)
        except (http.client.HTTPException, OSError) as err:
            self.close()
            raise TransportError(short_reason(err)) from err
        if self._resp.isclosed():
            self._finish()
        return result

    def _finish(self) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            # http.client leaves in `length` what a body cut short still owed
            on_done(self._resp.isclosed() and self._resp.length in (None, 0) and not self._resp.will_close)

    def close(self) -> None:
        """A body not read to the end must not leave its connection in the pool."""
        if not self._resp.isclosed():
            self._resp.close()
            on_done, self._on_done = self._on_done, None
            if on_done is not None:
                on_done(False)
        self._finish()


class Response:
    """What the API layer needs of an HTTP answer; the body streams from `raw` until read or closed."""

    def __init__(self, raw: _Body, status: int, headers: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = status
        self.headers = headers
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.raw.read()
        return self._content

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_content(self, size: int) -> Iterator[bytes]:
        if self._content is not None:
            yield self._content
            return
        while chunk := self.raw.read(size):
            yield chunk

    def close(self) -> None:
        if self._content is None:
            self.raw.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """One connection pool for a registry host: TLS settings fixed, no redirects or retries of its own.

    The TLS context is made at the first HTTPS connection: a plain-HTTP registry never loads ssl (the command
    line defers its import, imagetool/deferred.py)."""

    def __init__(self, tls: TLSConfig, user_agent: str, host: str) -> None:
        self.tls = tls
        self.host = host
        self._ctx: ssl.SSLContext | None = None
        self._ctx_lock = threading.Lock()
        self.pool = _Pool(self.context, _proxy_for(host))
        self.user_agent = user_agent

    def context(self) -> ssl.SSLContext:
        """The TLS context: the CAs and the client pair of `tls`, loaded once."""
        with self._ctx_lock:
            if self._ctx is None:
                ctx = _context(self.tls, self.host)
                if self.tls.cert:
                    try:
                        ctx.load_cert_chain(self.tls.cert[0], self.tls.cert[1])
                    except (ssl.SSLError, OSError) as err:
                        raise RegistryError(f"loading client certificate {self.tls.cert[0]}: "
                                            f"{short_reason(err)}") from err
                self._ctx = ctx
            return self._ctx

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: Any = None,
                stream: bool = False, params: Mapping[str, str] | None = None,
                timeout: tuple[float, float] = TIMEOUT, auth: tuple[str, str] | None = None) -> Response:
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        hdrs = {"User-Agent": self.user_agent, **(headers or {})}
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        parts = urllib.parse.urlsplit(url)
        scheme, netloc = parts.scheme, parts.netloc
        target = url if self.pool.proxy is not None and scheme == "http" else \
            (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        # a streamed body (an iterable of pieces) is sent once: whoever streams it knows how to go on
        replayable = data is None or isinstance(data, (bytes, bytearray, memoryview, str))
        reused = self.pool.take(scheme, netloc)
        conn = reused
        connected = conn is not None
        try:
            for _ in range(2):
                try:
                    if conn is None:
                        connected = False
                        conn = self.pool.connect(scheme, netloc, timeout)
                        connected = True
                    conn.request(method, target, body=data, headers=hdrs)
                    raw = conn.getresponse()
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    if conn is None or conn is not reused or not replayable:
                        raise
                    conn.close()
                    conn = reused = None  # a kept-alive connection the server had dropped: once more, fresh
        except (http.client.HTTPException, OSError) as err:
            if conn is not None:
                conn.close()
            raise _transport_error(err, netloc, timeout, connected) from err
        except BaseException:  # a streamed body's source failed mid-way: the request is half sent
            if conn is not None:
                conn.close()
            raise
        assert conn is not None
        kept = conn

        def done(reusable: bool) -> None:
            if reusable:
                self.pool.give_back(scheme, netloc, kept)
            else:
                kept.close()

        resp = Response(_Body(raw, done), raw.status, raw.headers, url)
        if not stream or method == "HEAD":
            resp.content  # noqa: B018 - read now (even a HEAD's empty body), so the connection is reusable
        return resp

    def get(self, url: str, **kw: Any) -> Response:
        return self.request("GET", url, **kw)


def _proxy_for(host: str) -> str | None:
    if not any(k.lower() in ("https_proxy", "http_proxy", "all_proxy") for k in os.environ):
        return None
    import urllib.request  # only when a proxy is configured: it is slow to import

    proxies = urllib.request.getproxies()
    proxy = proxies.get("https") or proxies.get("http")
    if not proxy or urllib.request.proxy_bypass(host.rsplit(":", 1)[0]) or is_loopback(host):
        return None
    return proxy


_sessions: dict[tuple[str, TLSConfig], Session] = {}
_sessions_lock = threading.Lock()


def session_for(host: str, tls: TLSConfig, user_agent: str = "imagetool") -> Session:
    """The shared session (one connection pool) for a registry host and TLS setting.

    Credentials and trust come only from imagetool's own settings: no ~/.netrc, no
    $REQUESTS_CA_BUNDLE.
    """
    key = (host, tls)
    with _sessions_lock:
        s = _sessions.get(key)
        if s is None:
            s = _sessions[key] = Session(tls, user_agent, host)
        return s


def short_reason(err: BaseException) -> str:
    """The useful part of a connection or TLS error, in one short line."""
    text = str(err)
    ssl_reason = re.search(r"\[SSL: [A-Z0-9_]+\] (.*?)(?: \(_ssl\.c:\d+\))?$", " ".join(text.split()))
    if ssl_reason:
        reason = ssl_reason.group(1).strip().rstrip(".")
        if "wrong version number" in reason:
            reason += " (the server may speak plain HTTP; see --tls-verify)"
        return reason
    return " ".join(text.split())[:300]
