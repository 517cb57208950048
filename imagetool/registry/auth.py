"""WWW-Authenticate parsing and the Basic/Bearer flows, with a token cache keyed by scope sets.

Scopes accumulate: a client that pulled from one repository and now pushes to another asks
the token server for both, so one token serves the whole copy (cross-repo mounts need that).
A 401 on a request that carried a token drops the token and fetches a new one once.

Tokens are kept per registry host and identity for the whole process (`TokenStore`), not per
client: the images of a sync each open their own clients, and ask the token server once per
scope set instead of once per image.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

from imagetool.errors import RegistryError
from imagetool.registry.errors import Unauthorized, error_from_response
from imagetool.registry.http import TIMEOUT, Session, TransportError

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
#: compiled at the first challenge (re keeps them): a registry known to be open never sends one
_PARAM = rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*,?'
_SCHEME = rf"\s*,?\s*({_TOKEN})(?:\s+|$)"


@dataclass
class Challenge:
    """One scheme of a WWW-Authenticate header, with its parameters."""

    scheme: str                       # lower case: "basic", "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="r",service="s",scope="a b", Basic realm="x"` -> challenges in order."""
    out: list[Challenge] = []
    scheme_re, param_re = re.compile(_SCHEME), re.compile(_PARAM)
    pos = 0
    while pos < len(header):
        m = scheme_re.match(header, pos)
        if not m:
            break
        chal = Challenge(m.group(1).lower())
        pos = m.end()
        while pos < len(header):
            p = param_re.match(header, pos)
            if not p:
                break
            value = p.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            chal.params[p.group(1).lower()] = value
            pos = p.end()
        out.append(chal)
    return out


def pick_challenge(header: str | None) -> Challenge | None:
    chals = parse_challenges(header or "")
    for scheme in ("bearer", "basic"):
        for c in chals:
            if c.scheme == scheme:
                return c
    return None


@dataclass
class _Token:
    """A bearer token, the scopes it was granted for and when it expires (time.monotonic())."""

    value: str
    scopes: frozenset[str]
    expires: float


Resources = dict[tuple[str, str], set[str]]

#: tokens a store keeps (the newest): scope sets of a few repositories each
MAX_TOKENS = 64


class TokenStore:
    """The bearer tokens of one registry host and identity, shared by the process's clients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: list[_Token] = []


_stores: dict[object, TokenStore] = {}
_stores_lock = threading.Lock()


def token_store(key: object) -> TokenStore:
    """The store for `key` (host, TLS settings and credentials: whatever decides which tokens a client may use)."""
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = TokenStore()
        return store


def parse_scopes(scopes: set[str] | frozenset[str]) -> Resources:
    """`repository:a/b:pull,push` -> {("repository", "a/b"): {"pull", "push"}} (names may hold colons)."""
    out: Resources = {}
    for scope in scopes:
        typ, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        out.setdefault((typ, name), set()).update(a for a in actions.split(",") if a)
    return out


def format_scopes(resources: Resources) -> frozenset[str]:
    return frozenset(f"{t}:{n}:{','.join(sorted(a))}" for (t, n), a in resources.items())


def covers(have: frozenset[str], need: set[str]) -> bool:
    got = parse_scopes(have)
    return all(actions <= got.get(key, set()) or "*" in got.get(key, set())
               for key, actions in parse_scopes(need).items())


class Authenticator:
    """Authorization headers for one registry host.

    `may_send_secret(url)` decides whether credentials may travel to a URL (HTTPS,
    or a host the user turned TLS off for); it is asked for the token realm too.
    """

    def __init__(self, host: str, session: Session, creds: tuple[str, str] | None,
                 registry_token: str | None, may_send_secret: Callable[[str], bool],
                 store: TokenStore | None = None) -> None:
        self.host = host
        self.session = session
        self.creds = creds
        self.registry_token = registry_token
        self.may_send_secret = may_send_secret
        self.challenge: Challenge | None = None
        self.scopes: set[str] = set()
        self._store = store or TokenStore()
        self.token_requests = 0

    @property
    def _tokens(self) -> list[_Token]:
        return self._store.tokens

    def learn(self, header: str | None) -> None:
        chal = pick_challenge(header)
        if chal is not None:
            self.challenge = chal

    def header(self, scopes: set[str], url: str) -> str | None:
        """The Authorization value for a request needing `scopes`, or None (anonymous)."""
        if self.registry_token:
            return f"Bearer {self.registry_token}"
        chal = self.challenge
        if chal is None:
            return None
        if chal.scheme == "basic":
            if not self.creds:
                return None
            if not self.may_send_secret(url):
                raise Unauthorized(f"refusing to send credentials for {self.host} over plain HTTP")
            raw = f"{self.creds[0]}:{self.creds[1]}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if chal.scheme == "bearer":
            return f"Bearer {self._bearer(scopes)}"
        return None

    def _bearer(self, scopes: set[str]) -> str:
        store = self._store
        with store.lock:  # held while fetching: clients starting at once wait for one token, not fetch many
            now = time.monotonic()
            store.tokens[:] = [t for t in store.tokens if t.expires > now]
            for t in reversed(store.tokens):
                if covers(t.scopes, scopes):
                    return t.value
            self.scopes |= scopes
            wanted = format_scopes(parse_scopes(self.scopes))
            self.scopes = set(wanted)
            token = self._fetch(wanted)
            store.tokens.append(token)
            del store.tokens[:-MAX_TOKENS]
            return token.value

    def invalidate(self, header: str | None, scopes: set[str]) -> None:
        """After a 401: forget tokens that cover `scopes`, take in the new challenge and its scope."""
        chal = pick_challenge(header)
        with self._store.lock:
            if chal is not None:
                self.challenge = chal
                extra = chal.params.get("scope")
                if extra and chal.scheme == "bearer":
                    self.scopes |= set(extra.split(" "))
            self._store.tokens[:] = [t for t in self._store.tokens if not covers(t.scopes, scopes)]

    def _fetch(self, scopes: frozenset[str]) -> _Token:
        assert self.challenge is not None
        realm = self.challenge.params.get("realm")
        if not realm:
            raise Unauthorized(f"{self.host}: bearer challenge without a realm")
        params: list[tuple[str, str]] = []
        if self.challenge.params.get("service"):
            params.append(("service", self.challenge.params["service"]))
        params.extend(("scope", s) for s in sorted(scopes))
        scheme = urllib.parse.urlsplit(realm).scheme.lower()
        if scheme not in ("http", "https"):  # containers/image refuses these too
            raise RegistryError(f"{self.host}: refusing token realm {realm}: not an http(s) URL")
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(params)
        auth = None
        if self.creds:
            if not self.may_send_secret(realm):
                raise Unauthorized(f"{self.host}: refusing to send credentials to token realm {realm} over plain "
                                   f"HTTP (mark the registry insecure, --tls-verify=false, to allow it)")
            auth = self.creds
        self.token_requests += 1
        try:
            # Only the realm's own host sees the credentials: no redirects are followed.
            resp = self.session.get(url, auth=auth, timeout=(TIMEOUT[0], 60.0))
        except TransportError as err:
            from imagetool.registry.errors import RegistryUnreachable

            raise RegistryUnreachable(f"getting a token from {realm}: {err}", temporary=not err.permanent) from err
        if resp.status_code in (401, 403):
            raise Unauthorized(f"authenticating to {self.host}: the token server rejected the credentials "
                               f"(HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise error_from_response(resp.status_code, resp.content, resp.headers,
                                      f"getting a token from {realm}")
        try:
            doc = resp.json()
            value = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            value, expires_in = None, 0
        if not value:
            raise Unauthorized(f"token server {realm} returned no token")
        # refresh a little early, so a token does not expire in flight
        return _Token(str(value), scopes, time.monotonic() + max(expires_in - 10, expires_in / 2))
