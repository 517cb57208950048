"""Registries whose /v2/ answered anonymously: a hint that spares the next command its ping.

The ping (GET /v2/) tells a command two things: the scheme that works and the auth challenge. A
registry that answered it with HTTP 200 and no challenge at a base URL is remembered as an empty file
$XDG_CACHE_HOME/imagetool/open-registries/SCHEME_HOST; the next command sends its first real request
to that base at once, and that request answers the same two questions (registry/client.py). Should it
get no answer that looks like the registry's own (refused, TLS failure, a 404 from something else), the
hint is forgotten and the command pings as ever before asking again; a 401 forgets it too (the registry
now wants credentials). Like schemes.py, a hint only orders what the user allowed, and a file that is
not this user's own is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path


def _file(base: str) -> Path | None:
    scheme, sep, host = base.partition("://")
    name = host.replace("/", "_")
    if not sep or scheme not in ("http", "https") or not name or name.startswith("."):
        return None
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "imagetool" / "open-registries" / f"{scheme}_{name}"


def is_open(base: str) -> bool:
    """Whether `base` (scheme://host) answered its last ping with 200 and no challenge."""
    path = _file(base)
    try:
        return path is not None and os.stat(path, follow_symlinks=False).st_uid == os.geteuid()
    except OSError:
        return False


def remember(base: str, anonymous: bool) -> None:
    """Record what a ping (or the request standing in for it) found; failing to write costs only speed."""
    path = _file(base)
    if path is None:
        return
    try:
        if anonymous:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass
