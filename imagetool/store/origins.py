"""Where a layer blob the local store lacks can be fetched: a partial pull makes the layer's snapshot
without storing its blob, and records here the registry it came from, so that a later copy that
needs the blob itself (a push, a save) fetches it then.

One small JSON file per blob: <store>/origins/<alg>/<hex>.json = {"registry", "repo", "tls_verify"}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imagetool.digest import Digest
from imagetool.store.layout import LayoutStore

ORIGINS = "origins"


def _path(store: LayoutStore, digest: Digest) -> Path:
    return Path(store.root) / ORIGINS / digest.algorithm / f"{digest.hex}.json"


def record(store: LayoutStore, digest: Digest, registry: str, repo: str, tls_verify: bool | None) -> None:
    path = _path(store, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"registry": registry, "repo": repo, "tls_verify": tls_verify}))
    os.replace(tmp, path)


def lookup(store: LayoutStore, digest: Digest) -> dict[str, Any] | None:
    try:
        doc = json.loads(_path(store, digest).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("registry"), str) or not isinstance(doc.get("repo"), str):
        return None
    return doc


def forget(store: LayoutStore, digest: Digest) -> None:
    try:
        _path(store, digest).unlink()
    except FileNotFoundError:
        pass
