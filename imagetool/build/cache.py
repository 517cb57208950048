"""The build step cache: a key for each step and a persistent index from keys to the layers they made.

A step's key hashes its parent's key (the chain back to the base image's digest), the
instruction as written, the values it was run with (expanded arguments, environment,
build args) and, for COPY/ADD, the content hash of its sources. Equal keys mean the step
would produce the same filesystem change, so its recorded layer is reused and nothing runs.

The index lives in the local store (build-cache.json beside index.json) and is rewritten
atomically under a lock; entries whose layer blob has gone (gc) are misses, not errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagetool import gojson
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ImagetoolError
from imagetool.store.layout import LayoutStore, atomic_write
from imagetool.store.lock import file_lock

CACHE_FILE = "build-cache.json"
CACHE_LOCK = ".build-cache.lock"
KEY_VERSION = "imagetool-build-step/1"
MAX_ENTRIES = 20000


def step_key(parent: str, instruction: str, inputs: Mapping[str, Any] | None = None) -> str:
    """sha256 of the parent key, the instruction text and its inputs (JSON, keys sorted)."""
    doc = {"v": KEY_VERSION, "parent": parent, "instruction": instruction, "inputs": dict(inputs or {})}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def base_key(image: str, digest: Digest | None) -> str:
    """The root of a chain: the base image's manifest digest (or scratch)."""
    return step_key("", "FROM", {"image": image, "digest": str(digest) if digest else None})


@dataclass(frozen=True)
class CacheEntry:
    """What a step produced: a layer (with its diff_id), or nothing for a step that only edits the config."""

    layer: Descriptor | None = None
    diff_id: Digest | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"used": int(time.time())}
        if self.layer is not None:
            d["layer"] = self.layer.to_oci_dict()
            d["diff_id"] = str(self.diff_id)
        if self.created:
            d["created"] = self.created
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CacheEntry:
        layer = Descriptor.from_dict(d["layer"]) if d.get("layer") else None
        diff_id = Digest.parse(d["diff_id"]) if d.get("diff_id") else None
        return cls(layer, diff_id, d.get("created"))


class BuildCache:
    def __init__(self, store: LayoutStore, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.path = Path(store.root) / CACHE_FILE
        self.max_entries = max_entries
        self._entries: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = gojson.loads(self.path.read_bytes(), CACHE_FILE)
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged index only costs cache hits; the next write replaces it
        entries = doc.get("entries") if isinstance(doc, dict) else None
        return dict(entries) if isinstance(entries, dict) else {}

    def entries(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = self._load()
        return self._entries

    def get(self, key: str) -> CacheEntry | None:
        raw = self.entries().get(key)
        if not isinstance(raw, dict):
            return None
        try:
            entry = CacheEntry.from_dict(raw)
        except (ImagetoolError, KeyError, TypeError, ValueError):
            return None
        if entry.layer is not None and self.store.blob_size(entry.layer.digest) != entry.layer.size:
            return None
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        self.put_many({key: entry})

    def put_many(self, new: Mapping[str, CacheEntry]) -> None:
        """Merge entries into the index on disk (other builds may have added theirs meanwhile)."""
        if not new:
            return
        with file_lock(str(Path(self.store.root) / CACHE_LOCK)):
            entries = self._load()
            entries.update({k: v.to_dict() for k, v in new.items()})
            if len(entries) > self.max_entries:
                by_age = sorted(entries, key=lambda k: entries[k].get("used", 0) if isinstance(entries[k], dict)
                                else 0)
                for k in by_age[: len(entries) - self.max_entries]:
                    del entries[k]
            atomic_write(self.path, gojson.dumps({"version": 1, "entries": entries}))
            self._entries = entries

    def clear(self) -> None:
        with file_lock(str(Path(self.store.root) / CACHE_LOCK)):
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._entries = {}
