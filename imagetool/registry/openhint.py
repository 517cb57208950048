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

from imagetool.registry.hintfiles import HintFiles

_hints = HintFiles("open-registries")


def _key(base: str) -> str | None:
    scheme, sep, host = base.partition("://")
    return f"{scheme}_{host}" if sep and scheme in ("http", "https") and host else None


def is_open(base: str) -> bool:
    """Whether `base` (scheme://host) answered its last ping with 200 and no challenge."""
    key = _key(base)
    return key is not None and _hints.holds(key)


def remember(base: str, anonymous: bool) -> None:
    """Record what a ping (or the request standing in for it) found."""
    key = _key(base)
    if key is not None:
        _hints.remember(key, anonymous)
