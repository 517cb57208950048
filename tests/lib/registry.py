"""Session fixtures that run the real Distribution registry (`docker-registry serve`) on 127.0.0.1.

Three configurations:
  plain_registry  HTTP, no authentication
  tls_registry    HTTPS (a CA made with trustme) + htpasswd Basic auth (bcrypt hash)
  token_registry  HTTP + `auth: token`; a small token issuer in this module signs ES256 JWTs
                  with a test key whose certificate is the registry's rootcertbundle
"""

from __future__ import annotations

import base64
import warnings
import datetime
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

USER = "tester"
PASSWORD = "s3cret-pass"
SERVICE = "imagetool-test-registry"
ISSUER = "imagetool-test-issuer"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running registry: where it listens and how to reach it."""

    name: str
    host: str                    # 127.0.0.1:PORT
    root: Path
    log_path: Path
    tls: bool = False
    cert_dir: str | None = None  # directory holding ca.crt, for --cert-dir
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    issuer: TokenIssuer | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def ref(self, repo: str) -> str:
        return f"docker://{self.host}/{repo}"

    @property
    def creds(self) -> str:
        return f"{self.username}:{self.password}"

    def tls_flags(self, prefix: str = "") -> list[str]:
        """Flags an imagetool/skopeo command needs to talk to this registry."""
        if self.tls:
            return [f"--{prefix}cert-dir", str(self.cert_dir)]
        return [f"--{prefix}tls-verify=false"]

    def creds_flags(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}creds", self.creds] if self.username else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def session(self) -> requests.Session:
        """A requests session authorised for this registry (test-side checks)."""
        s = requests.Session()
        s.trust_env = False  # $REQUESTS_CA_BUNDLE would override `verify`
        if self.tls:
            s.verify = self.ca_file
        if self.username and not self.issuer:
            s.auth = (self.username, self.password)  # type: ignore[assignment]
        return s

    def raw_get(self, path: str, scope: str | None = None, **kw: object) -> requests.Response:
        s = self.session()
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        headers.setdefault("Accept", ", ".join(MANIFEST_TYPES))
        if self.issuer is not None:
            headers["Authorization"] = "Bearer " + self.issuer.make_token(USER, [scope] if scope else [])
        return s.get(self.url + path, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def _libtrust_kid(public_der: bytes) -> str:
    b32 = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class TokenIssuer:
    """A bearer-token endpoint: Basic credentials (optional) in, an ES256 JWT for the asked scopes out."""

    def __init__(self, workdir: Path, users: dict[str, str], expires_in: int = 300) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = users
        self.expires_in = expires_in
        self.requests: list[dict[str, object]] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagetool test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._kid = _libtrust_kid(self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def make_token(self, user: str | None, scopes: list[str]) -> str:
        import jwt

        access = []
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if "*" in wanted and user:
                allowed = ["*"]
            access.append({"type": typ, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c], "kid": self._kid})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if issuer.users.get(u) != p:
                        issuer.requests.append({"user": u, "ok": False, "scope": query.get("scope", [])})
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        body = b'{"details":"incorrect username or password"}'
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    user = u
                scopes = query.get("scope", [])
                issuer.requests.append({"user": user, "ok": True, "scope": scopes})
                token = issuer.make_token(user, scopes)
                body = json.dumps({"token": token, "access_token": token, "expires_in": issuer.expires_in,
                                   "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _htpasswd_line(user: str, password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # glibc's bcrypt ($2b$), which the registry's htpasswd accepts
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n"


def start_registry(workdir: Path, name: str, *, tls: bool = False, htpasswd: bool = False,
                   token: bool = False, token_expiry: int = 300, mtls: bool = False) -> Registry:
    """Write a config and start `docker-registry serve`; wait (bounded) until /v2/ answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host = f"127.0.0.1:{port}"
    reg = Registry(name, host, workdir / "data", workdir / "registry.log", tls=tls)
    http: dict[str, object] = {"addr": host, "secret": "imagetool-test-secret",
                               "headers": {"X-Content-Type-Options": ["nosniff"]}}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(reg.root)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": http,
    }
    if tls:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        cert_dir = workdir / "certs"
        cert_dir.mkdir()
        ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
        leaf.private_key_pem.write_to_path(str(workdir / "server.key"))
        leaf.cert_chain_pems[0].write_to_path(str(workdir / "server.crt"))
        for extra in leaf.cert_chain_pems[1:]:
            extra.write_to_path(str(workdir / "server.crt"), append=True)
        http["tls"] = {"certificate": str(workdir / "server.crt"), "key": str(workdir / "server.key")}
        if mtls:  # clients must present a certificate from the same CA
            client = ca.issue_cert("imagetool-test-client")
            client.cert_chain_pems[0].write_to_path(str(cert_dir / "client.cert"))
            client.private_key_pem.write_to_path(str(cert_dir / "client.key"))
            http["tls"]["clientcas"] = [str(cert_dir / "ca.crt")]  # type: ignore[index]
        reg.cert_dir = str(cert_dir)
        reg.ca_file = str(cert_dir / "ca.crt")
    if htpasswd:
        (workdir / "htpasswd").write_text(_htpasswd_line(USER, PASSWORD))
        config["auth"] = {"htpasswd": {"realm": "imagetool-test", "path": str(workdir / "htpasswd")}}
        reg.username, reg.password = USER, PASSWORD
    if token:
        reg.issuer = TokenIssuer(workdir, {USER: PASSWORD}, token_expiry)
        config["auth"] = {"token": {"realm": reg.issuer.realm, "service": SERVICE, "issuer": ISSUER,
                                    "rootcertbundle": str(reg.issuer.cert_path)}}
        reg.username, reg.password = USER, PASSWORD
    cfg_path = workdir / "config.yml"
    cfg_path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    log = open(reg.log_path, "wb")
    reg.proc = subprocess.Popen(["docker-registry", "serve", str(cfg_path)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    log.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            client_pair = (f"{reg.cert_dir}/client.cert", f"{reg.cert_dir}/client.key") if mtls else None
            r = requests.get(reg.url + "/v2/", verify=reg.ca_file if tls else True, cert=client_pair, timeout=2)
            if r.status_code in (200, 401):
                return reg
        except requests.RequestException:
            pass
        if reg.proc.poll() is not None or time.monotonic() > deadline:
            stop_registry(reg)
            raise RuntimeError(f"registry {name} did not start:\n{reg.log()[-3000:]}")
        time.sleep(0.05)


def stop_registry(reg: Registry) -> None:
    if reg.proc is not None and reg.proc.poll() is None:
        reg.proc.terminate()
        try:
            reg.proc.wait(10)
        except subprocess.TimeoutExpired:
            reg.proc.kill()
            reg.proc.wait(10)
    if reg.issuer is not None:
        reg.issuer.close()


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("plain-registry"), "plain")
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def plain_registry2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("plain-registry2"), "plain2")
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("tls-registry"), "tls-htpasswd", tls=True, htpasswd=True)
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """TLS that also demands a client certificate (its cert_dir holds ca.crt, client.cert, client.key)."""
    reg = start_registry(tmp_path_factory.mktemp("mtls-registry"), "mtls", tls=True, mtls=True)
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("token-registry"), "token", token=True)
    yield reg
    stop_registry(reg)


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the blob-location cache and auth files of a test out of the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    (tmp_path / "run").mkdir(exist_ok=True)
