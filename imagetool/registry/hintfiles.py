"""Hints one command leaves the next about a registry: empty files named by a key, under $XDG_CACHE_HOME/imagetool/.

A hint only spares round trips (schemes.py, openhint.py): reading one that is wrong costs a fallback,
failing to write one costs only speed, and a file that is not this user's own is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagetool.cachedir import user_cache


class HintFiles:
    """One kind of hint: a directory of empty files, one per key (a host, a scheme and host)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _file(self, key: str) -> Path | None:
        name = key.replace("/", "_")
        if not name or name.startswith("."):
            return None
        return user_cache(self.kind, name)

    def holds(self, key: str) -> bool:
        path = self._file(key)
        try:
            return path is not None and os.stat(path, follow_symlinks=False).st_uid == os.geteuid()
        except OSError:
            return False

    def remember(self, key: str, on: bool) -> None:
        path = self._file(key)
        if path is None:
            return
        try:
            if on:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass
