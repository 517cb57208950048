"""One pooled HTTP session (urllib3) per registry endpoint, with its TLS material (certs.d, mTLS) and timeouts.

TLS is verified by default. `tls_verify=False` allows unverified HTTPS and, when the
server does not speak TLS at all, plain HTTP (as containers/image does for insecure
registries). CA files (*.crt) and client pairs (*.cert + *.key) come from `cert_dir`
or /etc/containers/certs.d/<host:port>/ (and /etc/docker/certs.d/).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import ssl
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import urllib3

CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
#: (connect, read) seconds: bounded, but a slow registry writing a big blob may be quiet for a while
TIMEOUT = (15.0, 120.0)
POOL_SIZE = 32


def endpoint_host(domain: str) -> str:
    """The host to connect to for a reference's domain (docker.io's API lives elsewhere)."""
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TLSConfig:
    """How to reach one registry: `verify` is True, False or a CA bundle path; `cert` a client pair."""

    verify: bool | str = True
    cert: tuple[str, str] | None = None
    insecure: bool = False           # the user turned verification off: plain HTTP allowed

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
        return cls(_bundle(cas) if cas else True, cert, False)


_bundle_lock = threading.Lock()


def _bundle(cas: list[str]) -> str:
    """The system CAs plus `cas`, written once to a file requests can verify against."""
    parts = []
    system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    for path in [system, *cas]:
        try:
            parts.append(Path(path).read_bytes().rstrip() + b"\n")
        except OSError:
            continue
    data = b"".join(parts)
    digest = hashlib.sha256(data).hexdigest()[:32]
    target = Path(tempfile.gettempdir()) / f"imagetool-ca-{os.getuid()}-{digest}.pem"
    with _bundle_lock:
        if not target.exists() or target.read_bytes() != data:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".imagetool-ca-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
    return str(target)


class TransportError(OSError):
    """A request that got no HTTP answer (refused, reset, timed out, TLS failure)."""


class TLSFailure(TransportError):
    pass


class Response:
    """What the API layer needs of an HTTP answer; the body streams from `raw` until read or closed."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = raw.status
        self.headers = raw.headers
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        if self._content is None:
            try:
                self._content = self.raw.read()
            except urllib3.exceptions.HTTPError as err:
                raise TransportError(short_reason(err)) from None
            finally:
                self.raw.release_conn()
        return self._content

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_content(self, size: int) -> Iterator[bytes]:
        if self._content is not None:
            yield self._content
            return
        try:
            while chunk := self.raw.read(size):
                yield chunk
        except urllib3.exceptions.HTTPError as err:
            raise TransportError(short_reason(err)) from None

    def close(self) -> None:
        if self._content is None:
            self.raw.close()  # a body not read to the end must not leave its connection in the pool
            self.raw.release_conn()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """One connection pool for a registry host: TLS settings fixed, no redirects or retries of its own."""

    def __init__(self, tls: TLSConfig, user_agent: str, host: str) -> None:
        kw: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "retries": False}
        if tls.verify is False:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            kw.update(cert_reqs="CERT_NONE", ssl_context=ctx)
        else:
            kw["cert_reqs"] = "CERT_REQUIRED"
            if isinstance(tls.verify, str):
                kw["ca_certs"] = tls.verify
        if tls.cert:
            kw.update(cert_file=tls.cert[0], key_file=tls.cert[1])
        proxy = _proxy_for(host)
        self.pool: urllib3.PoolManager = urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)
        self.user_agent = user_agent

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: Any = None,
                stream: bool = False, params: Mapping[str, str] | None = None,
                timeout: tuple[float, float] = TIMEOUT, auth: tuple[str, str] | None = None) -> Response:
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        hdrs = {"User-Agent": self.user_agent, **(headers or {})}
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        try:
            raw = self.pool.request(method, url, body=data, headers=hdrs, redirect=False, retries=False,
                                    preload_content=False, decode_content=False,
                                    timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        except urllib3.exceptions.SSLError as err:
            raise TLSFailure(short_reason(err)) from None
        except urllib3.exceptions.HTTPError as err:
            raise TransportError(short_reason(err)) from None
        resp = Response(raw, url)
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
            if tls.insecure:  # the user chose this; urllib3 would warn on every request
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            s = _sessions[key] = Session(tls, user_agent, host)
        return s


def short_reason(err: BaseException) -> str:
    """The useful part of a urllib3 error (they nest the cause several levels deep)."""
    text = str(err)
    ssl_reason = re.search(r"\[SSL: [A-Z0-9_]+\] ([^(']+)", text)
    if ssl_reason:
        reason = ssl_reason.group(1).strip()
        if "wrong version number" in reason:
            reason += " (the server may speak plain HTTP; see --tls-verify)"
        return reason
    m = re.search(r"\(Caused by [A-Za-z]+\((?:[^:]*: )?(.*)\)\)?$", text)
    if m:
        text = m.group(1)
    return " ".join(text.split()).rstrip("\"')")[:300]
