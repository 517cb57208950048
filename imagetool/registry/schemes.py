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

from imagetool.registry.hintfiles import HintFiles

_hints = HintFiles("plain-http")


def speaks_http(host: str) -> bool:
    return _hints.holds(host)


def remember(host: str, plain: bool) -> None:
    """Record what the ping found."""
    _hints.remember(host, plain)
