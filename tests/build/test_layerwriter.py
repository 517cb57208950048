"""Streaming layers into the store: deterministic tars, no partial blob when the producer fails."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from imagetool.build.layerwriter import copy_tar, tar_directory, tar_view, write_layer
from imagetool.build.rootview import RootView
from imagetool.errors import BuildError
from imagetool.store.layout import LayoutStore
from tests.lib.bundles import write_tree


def test_layer_is_stored_with_its_diff_id(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    root = write_tree(tmp_path / "root", {"a": b"1", "d": None, "d/b": b"2", "l": "->a"})
    desc, diff_id = write_layer(store, lambda out: tar_directory(root, out))
    blob = store.blob_path(desc.digest).read_bytes()
    raw = gzip.decompress(blob)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == str(diff_id)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getnames() == ["a", "d", "d/b", "l"]
        assert all(m.uname == "" and m.gname == "" for m in tar.getmembers())


def test_same_tree_same_layer_and_times_clamped(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    files = {"x": b"same", "sub": None, "sub/y": b"content"}
    a = write_tree(tmp_path / "a", files)
    b = write_tree(tmp_path / "b", files)
    os.utime(a / "x", (5, 5))
    os.utime(b / "x", (9, 9))
    for d in (a / "sub", b / "sub", a / "sub" / "y", b / "sub" / "y"):
        os.utime(d, (100, 100))
    assert write_layer(store, lambda out: tar_directory(a, out, 1))[1] == \
        write_layer(store, lambda out: tar_directory(b, out, 1))[1]
    assert write_layer(store, lambda out: tar_directory(a, out))[1] != \
        write_layer(store, lambda out: tar_directory(b, out))[1]


def test_failing_producer_stores_nothing(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")

    def produce(out):  # type: ignore[no-untyped-def]
        out.write(b"x" * (3 << 20))
        raise OSError("disk went away")

    with pytest.raises(BuildError, match="disk went away"):
        write_layer(store, produce)
    assert list(store.iter_blobs()) == [] and list(store.iter_temp_files()) == []


def test_copy_tar_refuses_what_is_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a valid tar"):
        copy_tar(io.BytesIO(os.urandom(4096)), io.BytesIO())
    out = io.BytesIO()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    copy_tar(io.BytesIO(data.getvalue()), out)
    assert out.getvalue() == data.getvalue()


def test_squashed_view_hides_whiteouts(tmp_path: Path) -> None:
    lower = write_tree(tmp_path / "lower", {"keep": b"k", "gone": b"g", "dir": None, "dir/old": b"o"})
    upper = write_tree(tmp_path / "upper", {"dir": None, "dir/new": b"n"})
    os.mknod(upper / "gone", 0o20000, 0)
    os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")
    out = io.BytesIO()
    tar_view(RootView([upper, lower]), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getnames() == ["dir", "dir/new", "keep"]
