"""The on-disk OCI image layout store and where the default one lives."""

from __future__ import annotations

import os
from pathlib import Path


def default_store_path(explicit: str | None = None) -> Path:
    """--store, else $IMAGETOOL_STORE, else $XDG_DATA_HOME/imagetool/store."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("IMAGETOOL_STORE")
    if env:
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "imagetool" / "store"
