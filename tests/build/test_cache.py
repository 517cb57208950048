"""Step keys and the persistent cache index in the local store."""

from __future__ import annotations

import io
from pathlib import Path

from imagetool import media
from imagetool.build.cache import CACHE_FILE, BuildCache, CacheEntry, base_key, step_key
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.store.layout import LayoutStore


def test_step_key_depends_on_every_input() -> None:
    parent = base_key("busybox", Digest.of(b"manifest"))
    key = step_key(parent, "RUN echo $A", {"env": ["A=1"], "args": ["echo $A"]})
    assert key == step_key(parent, "RUN echo $A", {"args": ["echo $A"], "env": ["A=1"]})  # order-free
    others = [
        step_key(base_key("busybox", Digest.of(b"other")), "RUN echo $A", {"env": ["A=1"], "args": ["echo $A"]}),
        step_key(parent, "RUN echo $B", {"env": ["A=1"], "args": ["echo $A"]}),
        step_key(parent, "RUN echo $A", {"env": ["A=2"], "args": ["echo $A"]}),
        step_key(parent, "RUN echo $A", {"env": ["A=1"], "args": ["echo $A"], "sources": "sha256:x"}),
        step_key(parent, "RUN echo $A"),
    ]
    assert len({key, *others}) == len(others) + 1
    assert base_key("scratch", None) != base_key("busybox", None)


def _layer(store: LayoutStore, data: bytes) -> Descriptor:
    digest, size = store.put_blob(io.BytesIO(data))
    return Descriptor(media.OCI_LAYER_GZIP, digest, size)


def test_index_persists_and_merges(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "store")
    layer = _layer(store, b"layer bytes")
    a, b = BuildCache(store), BuildCache(store)
    a.put("k1", CacheEntry(layer, Digest.of(b"tar"), "2024-01-01T00:00:00Z"))
    b.put("k2", CacheEntry())                      # written without having seen k1: must not drop it
    fresh = BuildCache(store)
    got = fresh.get("k1")
    assert got is not None and got.layer == layer and got.diff_id == Digest.of(b"tar")
    assert fresh.get("k2") == CacheEntry()
    assert fresh.get("k3") is None
    assert not list(store.iter_temp_files())
    assert (tmp_path / "store" / CACHE_FILE).is_file()


def test_entries_whose_layer_is_gone_are_misses(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "store")
    layer = _layer(store, b"soon gone")
    BuildCache(store).put("k", CacheEntry(layer, Digest.of(b"t")))
    store.delete_blob(layer.digest)
    assert BuildCache(store).get("k") is None


def test_damaged_index_costs_hits_not_builds(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "store")
    (tmp_path / "store" / CACHE_FILE).write_text("{not json")
    cache = BuildCache(store)
    assert cache.get("k") is None
    cache.put("k", CacheEntry())
    assert BuildCache(store).get("k") == CacheEntry()


def test_index_is_bounded(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "store")
    cache = BuildCache(store, max_entries=3)
    cache.put_many({f"k{i}": CacheEntry() for i in range(5)})
    assert len(BuildCache(store).entries()) == 3
