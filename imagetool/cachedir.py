"""The user's cache directory for imagetool's hints and caches (each a speed-up only: losing it costs time)."""

from __future__ import annotations

import os
from pathlib import Path

_home: tuple[str | None, Path] | None = None


def user_cache(*parts: str) -> Path:
    """$XDG_CACHE_HOME/imagetool/PARTS, or ~/.cache/imagetool/PARTS (RuntimeError when there is no home)."""
    global _home
    env = os.environ.get("XDG_CACHE_HOME")
    if _home is None or _home[0] != env:  # asked for by every copy: Path.home() once
        _home = (env, Path(env or str(Path.home() / ".cache")) / "imagetool")
    return _home[1].joinpath(*parts)
