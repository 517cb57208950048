"""Client: the distribution API for one registry (manifests, blobs, tags, referrers, catalog).

Requests go through one path, `send`: authorization for the needed scopes, a second try
after a 401 with a fresh token, retries with backoff for temporary failures, redirects
followed by hand so credentials never reach another host, and typed errors.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, ManifestError, ManifestUnknown, NotFound, RegistryError, Unsupported
from imagetool.registry import credentials
from imagetool.registry.auth import Authenticator, pick_challenge, token_store
from imagetool.registry.blobreader import BlobReader
from imagetool.registry.errors import RegistryUnreachable, Unauthorized, error_from_response, registry_text
from imagetool.registry.http import (
    TIMEOUT,
    Response,
    TLSConfig,
    TLSFailure,
    TransportError,
    endpoint_host,
    session_for,
)
from imagetool.registry.retry import RetryPolicy

MANIFEST_ACCEPT = ", ".join(media.ACCEPT)
MAX_MANIFEST = 4 << 20
_LINK_NEXT = r'<([^>]+)>\s*;\s*rel="?next"?'  # compiled when a listing pages (re keeps it)


@dataclass(frozen=True)
class ClientOptions:
    """What a client needs from the user's settings (a transport builds it from its SystemContext)."""

    tls_verify: bool | None = None
    cert_dir: str | None = None
    creds: tuple[str, str] | None = None
    registry_token: str | None = None
    authfile: str | None = None
    no_creds: bool = False
    retry_times: int = 3
    retry_delay: float | None = None
    user_agent: str = "imagetool"


#: (host, TLS settings) -> (base URL, WWW-Authenticate of /v2/): one ping per registry and process
_pinged: dict[tuple[str, TLSConfig], tuple[str, str | None]] = {}
#: entries of _pinged taken from openhint.py, not from a ping: unconfirmed until a request answers
_guessed: set[tuple[str, TLSConfig]] = set()
#: a header every response of a Distribution-API registry carries, error responses included
_API_VERSION = "Docker-Distribution-Api-Version"

#: one lock per registry: clients starting at once (a sync's images) wait for one ping instead of each sending one
_ping_locks: dict[tuple[str, TLSConfig], threading.Lock] = {}
_ping_locks_lock = threading.Lock()


def _ping_lock(key: tuple[str, TLSConfig]) -> threading.Lock:
    with _ping_locks_lock:
        return _ping_locks.setdefault(key, threading.Lock())


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def delete_scope(repo: str) -> str:
    return f"repository:{repo}:delete"


class Client:
    """The API of one registry; thread-safe, one connection pool per registry host."""

    def __init__(self, domain: str, options: ClientOptions | None = None, repo: str | None = None) -> None:
        self.options = options or ClientOptions()
        self.domain = domain
        self.host = endpoint_host(domain)
        self.tls = TLSConfig.for_host(self.host, self.options.tls_verify, self.options.cert_dir)
        self.session = session_for(self.host, self.tls, self.options.user_agent)
        self.retry = RetryPolicy(max(0, self.options.retry_times), self.options.retry_delay)
        creds = None
        if not self.options.no_creds:
            creds = self.options.creds or credentials.lookup(domain, repo, authfile=self.options.authfile)
        self.creds = creds
        self.auth = Authenticator(self.host, self.session, creds, self.options.registry_token,
                                  self.may_send_secret, token_store((self.host, self.tls, creds)))
        self.base: str | None = None
        self._ping_lock = _ping_lock((self.host, self.tls))

    # -- connection and authentication

    def may_send_secret(self, url: str) -> bool:
        """Credentials travel over HTTPS only, unless the user marked this registry insecure."""
        return urllib.parse.urlsplit(url).scheme == "https" or self.tls.insecure

    def ping(self) -> str:
        """Find the scheme (HTTPS; plain HTTP only if TLS was turned off) and the auth challenge."""
        with self._ping_lock:
            if self.base is not None:
                return self.base
            known = _pinged.get((self.host, self.tls))
            if known is not None:  # another client in this process (the other side of a copy) asked
                self.base, challenge = known
                self.auth.learn(challenge)
                return self.base
            guess = self._open_base()
            if guess is not None:  # the first request stands in for the ping (openhint.py)
                self.base = guess
                _pinged[(self.host, self.tls)] = (guess, None)
                _guessed.add((self.host, self.tls))
                return guess
            base, resp = self.retry.run(self._ping_schemes)
            challenge = resp.headers.get("WWW-Authenticate")
            self.auth.learn(challenge)
            self.base = base
            _pinged[(self.host, self.tls)] = (base, challenge)
            from imagetool.registry import openhint

            anonymous = resp.status_code == 200 and not challenge
            if anonymous != openhint.is_open(base):
                openhint.remember(base, anonymous)
            return base

    def _open_base(self) -> str | None:
        """The base URL the first ping would find, when it answered anonymously last time."""
        from imagetool.registry import openhint, schemes

        scheme = "http" if self.tls.insecure and schemes.speaks_http(self.host) else "https"
        base = f"{scheme}://{self.host}"
        return base if openhint.is_open(base) else None

    def _unguess(self) -> None:
        """The hinted base got no answer of the registry's own: forget it; the next url() pings."""
        from imagetool.registry import openhint

        with self._ping_lock:
            key = (self.host, self.tls)
            if key in _guessed:
                _guessed.discard(key)
                base = _pinged.pop(key, (None, None))[0]
                if base:
                    openhint.remember(base, False)
            self.base = None

    def _ping_schemes(self) -> tuple[str, Response]:
        """One try of each scheme in turn (HTTPS, then plain HTTP only if TLS was turned off; HTTP first
        when this host answered over HTTP before, see schemes.py)."""
        from imagetool.registry import schemes as hints

        schemes = ["https", "http"] if self.tls.insecure else ["https"]
        hinted = self.tls.insecure and hints.speaks_http(self.host)
        if hinted:
            schemes.reverse()
        last: RegistryError | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            try:
                resp = self._ping_once(base)
                if self.tls.insecure and hinted != (scheme == "http"):
                    hints.remember(self.host, scheme == "http")
                return base, resp
            except _NotTLS as err:
                last = last or err  # after a hinted HTTP try, its failure is the one to report
            except RegistryError as err:
                if hinted and scheme == "http" and not err.temporary and not isinstance(err, RegistryUnreachable):
                    last = err  # not (or no longer) a plain-HTTP registry: try HTTPS as ever
                    continue
                if not isinstance(err, RegistryUnreachable):
                    raise
                if not err.temporary:  # no other scheme helps against an unknown host or a silent one
                    raise RegistryUnreachable(f"pinging registry {self.host}: {err}", temporary=False) from err
                last = err
        raise RegistryUnreachable(f"pinging registry {self.host}: {last}",
                                  temporary=isinstance(last, RegistryUnreachable)) from last

    def _ping_once(self, base: str) -> Response:
        try:
            resp = self.session.get(base + "/v2/", timeout=TIMEOUT)
        except TLSFailure as err:
            if self.tls.insecure:
                raise _NotTLS(str(err)) from err
            raise RegistryError(f"TLS handshake with {self.host} failed: {err}") from err
        except TransportError as err:
            raise RegistryUnreachable(str(err), temporary=not err.permanent) from err
        resp.close()
        if resp.status_code in (200, 401):
            return resp
        if resp.status_code >= 500 or resp.status_code == 429:
            raise error_from_response(resp.status_code, resp.content, resp.headers, f"pinging {self.host}")
        raise RegistryError(f"{self.host} does not look like a registry: /v2/ answered HTTP {resp.status_code}")

    def check_login(self) -> None:
        """Prove the credentials work: GET /v2/ authorised by them (a token for no scope under Bearer)."""
        self.ping()
        self.send("GET", "/v2/", scopes=set(), what=f"logging in to {self.host}").close()

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.ping() + path

    def _once(self, method: str, url: str, scopes: set[str], headers: Mapping[str, str], data: Any,
              stream: bool, params: Mapping[str, str] | None) -> Response:
        hdrs = dict(headers)
        own = urllib.parse.urlsplit(url).netloc == self.host
        if own:
            value = self.auth.header(scopes, url)
            if value:
                hdrs["Authorization"] = value
        for _ in range(6):
            try:
                resp = self.session.request(method, url, headers=hdrs, data=data, stream=stream, params=params,
                                            timeout=TIMEOUT)
            except TransportError as err:
                if (self.host, self.tls) in _guessed:
                    raise _StaleGuess() from err
                raise RegistryUnreachable(f"{method} {_strip_query(url)}: {err}", temporary=not err.permanent) \
                    from err
            if (self.host, self.tls) in _guessed and own:
                self._check_guess(resp)
            if resp.status_code in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") \
                    and resp.headers.get("Location"):
                resp.close()
                url = urllib.parse.urljoin(url, resp.headers["Location"])
                params = None
                if urllib.parse.urlsplit(url).netloc != self.host or not self.may_send_secret(url):
                    hdrs.pop("Authorization", None)  # never to another host, nor downgraded to plain HTTP
                continue
            return resp
        raise RegistryError(f"{method} {_strip_query(url)}: too many redirects")

    def send(self, method: str, path: str, *, scopes: set[str], what: str, ok: tuple[int, ...] = (200,),
             headers: Mapping[str, str] | None = None, data: Any = None, stream: bool = False,
             params: Mapping[str, str] | None = None, retry: bool = True) -> Response:
        """One API call; raises the typed error for any status outside `ok`."""
        replayable = data is None or isinstance(data, (bytes, bytearray, memoryview, str))
        hdrs = headers or {}

        url = self.url(path)  # the ping retries on its own: a retry here would repeat its retries
        if (self.host, self.tls) in _guessed and url.startswith(self.base or "\0"):
            if replayable:
                try:
                    return self._send_once(method, url, scopes, hdrs, data, stream, params, ok, what)
                except _StaleGuess:
                    pass
            self._unguess()
            url = self.url(path)
        return self._send_once(method, url, scopes, hdrs, data, stream, params, ok, what, retry and replayable)

    def _check_guess(self, resp: Response) -> None:
        """Judge a hinted base by the first answer: a registry's own answer confirms it."""
        key = (self.host, self.tls)
        if resp.status_code == 401:  # the registry wants credentials now: ping next time
            from imagetool.registry import openhint

            _guessed.discard(key)
            openhint.remember(self.base or "", False)
        elif resp.status_code < 400 or resp.headers.get(_API_VERSION):
            _guessed.discard(key)
        else:
            resp.close()
            raise _StaleGuess()

    def _send_once(self, method: str, url: str, scopes: set[str], hdrs: Mapping[str, str], data: Any,
                   stream: bool, params: Mapping[str, str] | None, ok: tuple[int, ...], what: str,
                   retry: bool = False) -> Response:
        replayable = data is None or isinstance(data, (bytes, bytearray, memoryview, str))

        def attempt() -> Response:
            resp = self._once(method, url, scopes, hdrs, data, stream, params)
            if resp.status_code == 401 and replayable:
                resp.close()
                self.auth.invalidate(resp.headers.get("WWW-Authenticate"), scopes)
                resp = self._once(method, url, scopes, hdrs, data, stream, params)
            if resp.status_code in ok:
                return resp
            body = resp.content[:65536] if method != "HEAD" else b""
            resp.close()
            if resp.status_code == 401:
                raise self._unauthorized(what, resp, body)
            raise error_from_response(resp.status_code, body, resp.headers, what)

        return self.retry.run(attempt) if retry else attempt()

    def _unauthorized(self, what: str, resp: Response, body: bytes = b"") -> Unauthorized:
        chal = pick_challenge(resp.headers.get("WWW-Authenticate"))
        if self.creds is None and self.options.registry_token is None:
            why = "no credentials given or stored"
        elif chal is not None and chal.params.get("error") == "insufficient_scope":
            why = "access denied for these credentials"
        else:
            why = "invalid username/password"
        said = registry_text(body) or "unauthorized: authentication required"
        return Unauthorized(f"{what}: {said} ({why} for {self.host}, HTTP 401)")

    # -- manifests

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        """Raw bytes and media type of a manifest by tag or digest (a digest is checked)."""
        resp = self.send("GET", f"/v2/{repo}/manifests/{ref}", scopes={pull_scope(repo)},
                         headers={"Accept": MANIFEST_ACCEPT}, what=f"reading manifest {ref} in {self.domain}/{repo}",
                         stream=True)
        try:
            raw = _read_limited(resp, MAX_MANIFEST, f"manifest {ref}")
        finally:
            resp.close()
        if ref.startswith("sha256:") or ref.startswith("sha512:"):
            want = Digest.parse(ref)
            got = Digest.of(raw, want.algorithm)
            if got != want:
                raise DigestMismatch(want, got)
        mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if not mt or mt in ("application/json", "text/plain"):
            from imagetool.manifest import guess_media_type

            mt = guess_media_type(raw)
        return raw, mt

    def head_manifest(self, repo: str, ref: str) -> Descriptor | None:
        """The descriptor a tag or digest names now, or None when there is none."""
        try:
            resp = self.send("HEAD", f"/v2/{repo}/manifests/{ref}", scopes={pull_scope(repo)},
                             headers={"Accept": MANIFEST_ACCEPT}, what=f"checking manifest {ref} in {repo}")
        except NotFound:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            return None
        mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return Descriptor(mt, Digest.parse(digest), int(resp.headers.get("Content-Length") or 0))

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> Digest:
        digest = Digest.of(raw)
        resp = self.send("PUT", f"/v2/{repo}/manifests/{ref}", scopes={push_scope(repo)}, ok=(200, 201, 202),
                         headers={"Content-Type": media_type}, data=raw,
                         what=f"writing manifest {ref} to {self.domain}/{repo}")
        resp.close()
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != str(digest) and got.startswith(digest.algorithm):
            raise ManifestError(f"registry stored manifest {ref} as {got}, not {digest}")
        return digest

    def delete_manifest(self, repo: str, digest: Digest) -> None:
        try:
            resp = self.send("DELETE", f"/v2/{repo}/manifests/{digest}", scopes={delete_scope(repo)},
                             ok=(200, 202), what=f"deleting manifest {digest} in {self.domain}/{repo}")
        except RegistryError as err:
            if "HTTP 405" in str(err):
                raise Unsupported(f"{self.domain} does not allow deleting images: {err}") from err
            raise
        resp.close()

    # -- blobs

    def head_blob(self, repo: str, digest: Digest) -> int | None:
        """The size of a blob in `repo`, or None when it is not there."""
        try:
            resp = self.send("HEAD", f"/v2/{repo}/blobs/{digest}", scopes={pull_scope(repo)},
                             what=f"checking blob {digest.short} in {repo}")
        except NotFound:
            return None
        length = resp.headers.get("Content-Length")
        return int(length) if length is not None else -1

    def get_blob(self, repo: str, digest: Digest, size: int | None = None) -> BlobReader:
        """A stream of a blob's bytes that resumes with Range requests when the connection breaks."""
        return BlobReader(self, repo, digest, size)

    def open_blob_response(self, repo: str, digest: Digest, offset: int) -> Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.send("GET", f"/v2/{repo}/blobs/{digest}", scopes={pull_scope(repo)}, headers=headers,
                         ok=(200, 206), stream=True, what=f"reading blob {digest.short} in {self.domain}/{repo}")

    def mount_blob(self, repo: str, digest: Digest, from_repo: str) -> bool:
        """Cross-repository mount; True when the registry linked the blob without an upload."""
        resp = self.send("POST", f"/v2/{repo}/blobs/uploads/", scopes={push_scope(repo), pull_scope(from_repo)},
                         params={"mount": str(digest), "from": from_repo}, ok=(201, 202),
                         what=f"mounting blob {digest.short} from {from_repo} into {repo}")
        resp.close()
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:  # the registry opened an upload instead: give it back
            try:
                self.send("DELETE", urllib.parse.urljoin(self.url("/v2/"), location), scopes={push_scope(repo)},
                          ok=(200, 204, 404), what="cancelling upload", retry=False).close()
            except RegistryError:
                pass
        return False

    def open_upload(self, repo: str, mount: Digest | None = None, from_repo: str | None = None) -> str | None:
        """Start an upload session in `repo`, asking the registry to link blob `mount` from `from_repo` instead.

        None when it linked the blob (201); else the session's absolute URL (202: no such blob there, or
        a registry that does not mount). With `from_repo` = `repo` this one request both checks whether
        the repository has the blob and starts its upload.
        """
        params = {"mount": str(mount), "from": str(from_repo)} if mount is not None else None
        scopes = {push_scope(repo)} | ({pull_scope(from_repo)} if from_repo and from_repo != repo else set())
        resp = self.send("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, params=params, ok=(201, 202),
                         what=f"starting an upload to {self.domain}/{repo}")
        resp.close()
        if resp.status_code == 201:
            return None
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError("registry started an upload without a Location")
        return str(urllib.parse.urljoin(self.url("/v2/"), location))

    def cancel_upload(self, location: str, repo: str) -> None:
        """Give an upload session back (best effort: an abandoned one expires on the registry anyway)."""
        try:
            self.send("DELETE", location, scopes={push_scope(repo)}, ok=(200, 204, 404), retry=False,
                      what="cancelling upload").close()
        except (RegistryError, OSError):
            pass

    def delete_blob(self, repo: str, digest: Digest) -> None:
        self.send("DELETE", f"/v2/{repo}/blobs/{digest}", scopes={delete_scope(repo)}, ok=(200, 202),
                  what=f"deleting blob {digest.short}").close()

    # -- listings

    def _paged(self, path: str, key: str, scope: str, what: str, page_size: int | None) -> Iterator[str]:
        params: Mapping[str, str] | None = {"n": str(page_size)} if page_size else None
        next_path: str | None = path
        seen = 0
        while next_path:
            resp = self.send("GET", next_path, scopes={scope}, params=params, what=what)
            try:
                doc = resp.json()
            except ValueError as err:
                raise RegistryError(f"{what}: malformed JSON") from err
            for item in doc.get(key) or []:
                yield str(item)
            seen += 1
            link = re.search(_LINK_NEXT, resp.headers.get("Link", ""))
            next_path = urllib.parse.urljoin(resp.url, link.group(1)) if link else None
            params = None
            if seen > 100000:
                raise RegistryError(f"{what}: too many pages")

    def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        return list(self._paged(f"/v2/{repo}/tags/list", "tags", pull_scope(repo),
                                f"listing tags of {self.domain}/{repo}", page_size))

    def catalog(self, page_size: int | None = None) -> list[str]:
        return list(self._paged("/v2/_catalog", "repositories", "registry:catalog:*",
                                f"listing repositories of {self.domain}", page_size))

    def referrers(self, repo: str, digest: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """OCI 1.1 referrers; registries without the API are asked for the `sha256-<hex>` index tag."""
        params = {"artifactType": artifact_type} if artifact_type else None
        try:
            resp = self.send("GET", f"/v2/{repo}/referrers/{digest}", scopes={pull_scope(repo)}, params=params,
                             headers={"Accept": media.OCI_INDEX}, what=f"listing referrers of {digest.short}")
            ctype = resp.headers.get("Content-Type", "")
            raw = resp.content
            if not ctype.startswith(media.OCI_INDEX):
                raise NotFound("no referrers API")
        except NotFound:
            try:
                raw, _ = self.get_manifest(repo, f"{digest.algorithm}-{digest.hex}")
            except ManifestUnknown:
                return []
            except NotFound:
                return []
        from imagetool.manifest import parse

        index = parse(raw, media.OCI_INDEX)
        found = list(getattr(index, "manifests", []))
        if artifact_type:
            found = [d for d in found if getattr(d, "artifact_type", None) == artifact_type]
        return found


class _NotTLS(RegistryError):
    """The server did not complete a TLS handshake: try plain HTTP (only when TLS is off)."""


class _StaleGuess(Exception):
    """The base URL openhint.py gave got no answer of the registry's own (never retried as such)."""


def _read_limited(resp: Response, limit: int, what: str) -> bytes:
    chunks = []
    total = 0
    for chunk in resp.iter_content(1 << 16):
        total += len(chunk)
        if total > limit:
            raise ManifestError(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]
