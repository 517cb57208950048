"""Registries that answered over plain HTTP: a hint that spares the next command a TLS attempt.

With TLS verification off, a registry is pinged over HTTPS first and over HTTP after that
fails: for a plain-HTTP registry every command paid a refused TLS handshake (a connection, a
TLS context) before its first real request. A host that answered over HTTP is remembered as an
empty file $XDG_CACHE_HOME/imagetool/plain-http/HOST; the next ping with verification off tries
HTTP first and falls back to HTTPS (forgetting the hint) if that fails. The hint changes only
the order of the schemes the user already allowed: with verification on, it is never read.
A file that is not this user's own is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path


def _dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagetool" / "plain-http"


def _file(host: str) -> Path | None:
    name = host.replace("/", "_")
    return None if name.startswith(".") or not name else _dir() / name


def speaks_http(host: str) -> bool:
    path = _file(host)
    try:
        return path is not None and os.stat(path, follow_symlinks=False).st_uid == os.geteuid()
    except OSError:
        return False


def remember(host: str, plain: bool) -> None:
    """Record what the ping found; a hint only, so failing to write it costs nothing but speed."""
    path = _file(host)
    if path is None:
        return
    try:
        if plain:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass
