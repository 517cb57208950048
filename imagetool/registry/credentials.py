"""Registry credentials: auth.json / docker config.json files and docker-credential-* helpers.

Lookup order (containers/image's): --creds; then --authfile or $REGISTRY_AUTH_FILE alone when
given; else $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json and
~/.docker/config.json. In each file: credHelpers[host], then `auths` (most specific key
first: host/ns/repo, host/ns, host), then credsStore.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from imagetool.errors import RegistryError, UsageError


class CredentialHelperError(RegistryError):
    pass


def default_auth_file() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    return Path.home() / ".config" / "containers" / "auth.json"


def auth_files(authfile: str | None) -> list[Path]:
    explicit = authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [Path(explicit)]
    files = [default_auth_file()]
    cfg = Path.home() / ".config" / "containers" / "auth.json"
    if cfg not in files:
        files.append(cfg)
    docker_config = os.environ.get("DOCKER_CONFIG")
    files.append(Path(docker_config) / "config.json" if docker_config else Path.home() / ".docker" / "config.json")
    return files


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise RegistryError(f"reading auth file {path}: {err}") from err
    return doc if isinstance(doc, dict) else {}


def _normalise_key(key: str) -> str:
    """Docker config keys may be URLs (`https://index.docker.io/v1/`)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    key = key.rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key[:-3]
    return "docker.io" if key in ("index.docker.io", "registry-1.docker.io") else key


def _decode(entry: dict[str, Any]) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as err:
            raise RegistryError("auth file entry has a malformed \"auth\" field") from err
        return user, password
    if entry.get("username"):
        return str(entry["username"]), str(entry.get("password", ""))
    if entry.get("identitytoken"):
        return "<token>", str(entry["identitytoken"])
    return None


def helper_get(helper: str, host: str) -> tuple[str, str] | None:
    import subprocess

    try:
        proc = subprocess.run([f"docker-credential-{helper}", "get"], input=host, capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError as err:
        raise CredentialHelperError(f"credential helper docker-credential-{helper} not found") from err
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise CredentialHelperError(f"docker-credential-{helper} get failed: {proc.stderr.strip()[:200]}")
    try:
        doc = json.loads(proc.stdout)
        return str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError) as err:
        raise CredentialHelperError(f"docker-credential-{helper} returned malformed output") from err


def _helper_call(helper: str, action: str, payload: str) -> None:
    import subprocess

    try:
        proc = subprocess.run([f"docker-credential-{helper}", action], input=payload, capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError as err:
        raise CredentialHelperError(f"credential helper docker-credential-{helper} not found") from err
    if proc.returncode != 0 and not (action == "erase" and "not found" in proc.stdout + proc.stderr):
        raise CredentialHelperError(f"docker-credential-{helper} {action} failed: {proc.stderr.strip()[:200]}")


def lookup_in(doc: dict[str, Any], host: str, repo: str | None = None) -> tuple[str, str] | None:
    helpers = doc.get("credHelpers") or {}
    if host in helpers:
        return helper_get(str(helpers[host]), host)
    auths = {_normalise_key(k): v for k, v in (doc.get("auths") or {}).items() if isinstance(v, dict)}
    keys = []
    if repo:
        parts = repo.split("/")
        keys = [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)]
    keys.append(host)
    for key in keys:
        if key in auths:
            found = _decode(auths[key])
            if found:
                return found
    if doc.get("credsStore"):
        return helper_get(str(doc["credsStore"]), host)
    return None


def lookup(host: str, repo: str | None = None, *, authfile: str | None = None) -> tuple[str, str] | None:
    """Stored credentials for a registry host (and repository), or None."""
    for path in auth_files(authfile):
        found = lookup_in(_load(path), host, repo)
        if found:
            return found
    return None


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Atomic write with mode 0600 (fsync, rename): credentials are never world-readable, not even briefly."""
    from imagetool.outputs import write_output

    data = (json.dumps(doc, indent="\t") + "\n").encode()
    try:
        write_output(path, data, 0o600)
    except OSError as err:
        raise RegistryError(f"writing auth file {path}: {err.strerror or err}") from err


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive flock on `path`.lock, so concurrent logins and logouts each see the others' entries."""
    from imagetool.outputs import writes_in_place

    if writes_in_place(path):  # a device or FIFO: nothing to read back, nothing to lose
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(f"{os.path.realpath(path)}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as err:
        raise RegistryError(f"locking auth file {path}: {err.strerror or err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_target(authfile: str | None) -> Path:
    return Path(authfile or os.environ.get("REGISTRY_AUTH_FILE") or default_auth_file())


def store(key: str, user: str, password: str, authfile: str | None = None) -> Path:
    """Save credentials for `key` (host or host/repo); a configured helper keeps them instead."""
    if not user:
        raise UsageError("a user name is required")
    path = _write_target(authfile)
    with _locked(path):
        doc = _load(path)
        helper = (doc.get("credHelpers") or {}).get(key) or doc.get("credsStore")
        if helper:
            _helper_call(str(helper), "store", json.dumps({"ServerURL": key, "Username": user, "Secret": password}))
            return path
        auths = doc.setdefault("auths", {})
        auths[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        _write(path, doc)
    return path


def erase(key: str | None, authfile: str | None = None) -> bool:
    """Forget credentials for `key` (None: all of them); True if anything was removed."""
    path = _write_target(authfile)
    with _locked(path):
        doc = _load(path)
        if not doc:
            return False
        auths = doc.get("auths") or {}
        removed = False
        if key is None:
            removed = bool(auths)
            doc["auths"] = {}
        else:
            for k in list(auths):
                if _normalise_key(k) == key:
                    del auths[k]
                    removed = True
            helper = (doc.get("credHelpers") or {}).get(key) or doc.get("credsStore")
            if helper and not removed:
                _helper_call(str(helper), "erase", key)
                removed = True
        if removed:
            _write(path, doc)
        return removed


def stored_user(key: str, authfile: str | None = None) -> str | None:
    found = lookup(key, authfile=authfile)
    return found[0] if found else None
