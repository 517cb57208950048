"""The OCI layout store: atomic blobs, index locking across processes, gc."""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, LayoutError
from imagetool.store.gc import collect
from imagetool.store.layout import TEMP_PREFIX, LayoutStore
from imagetool.store.tempfiles import GRACE
from tests.lib.cli import imagetool, tool
from tests.lib.images import random_image


def test_put_blob_verifies_and_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    good = b"x" * 100_000
    with pytest.raises(DigestMismatch):
        store.put_blob(io.BytesIO(good[:-1] + b"y"), Digest.of(good), len(good))
    assert not store.has_blob(Digest.of(good))
    assert not list((tmp_path / "s" / "blobs" / "sha256").glob(TEMP_PREFIX + "*"))
    digest, size = store.put_blob(io.BytesIO(good), Digest.of(good), len(good))
    assert store.blob_path(digest).read_bytes() == good and size == len(good)


def test_a_sniffed_stream_is_verified_once_and_still_refused_when_wrong(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy sniffs a layer's compression before writing it (a PeekReader over the source's verifying
    reader): the store relies on that reader's check instead of hashing the bytes again, and the check
    still refuses a blob whose bytes are not the digest's."""
    import imagetool.store.layout as layout
    from imagetool import compression
    from imagetool.digest import VerifyingReader

    store = LayoutStore.create(tmp_path / "s")
    good = os.urandom(300_000)

    def no_second_hash(*args: object, **kw: object) -> None:
        raise AssertionError("the store hashed the blob a second time")

    monkeypatch.setattr(layout, "VerifyingReader", no_second_hash)
    bad = VerifyingReader(io.BytesIO(good[:-1] + b"!"), Digest.of(good), len(good))
    with pytest.raises(DigestMismatch):
        store.put_blob(compression.sniff(bad)[1], Digest.of(good), len(good))
    assert not store.has_blob(Digest.of(good))
    assert not list((tmp_path / "s" / "blobs" / "sha256").glob(TEMP_PREFIX + "*"))
    ok = VerifyingReader(io.BytesIO(good), Digest.of(good), len(good))
    digest, size = store.put_blob(compression.sniff(ok)[1], Digest.of(good), len(good))
    assert store.blob_path(digest).read_bytes() == good and size == len(good) and ok.verified


def test_layout_files(tmp_path: Path) -> None:
    LayoutStore.create(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((tmp_path / "s" / "index.json").read_text())["manifests"] == []
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "oci-layout").write_text('{"imageLayoutVersion":"9.0"}')
    with pytest.raises(LayoutError):
        LayoutStore.open(tmp_path / "bad")


def _copy_with_tag(args: tuple[str, str, str]) -> int:
    src, store, tag = args
    return imagetool("copy", "-q", src, tag, env={"IMAGETOOL_STORE": store}, check=False).returncode


def test_concurrent_copies_keep_every_tag(tmp_path: Path) -> None:
    for i in range(4):
        random_image(tmp_path / f"src{i}", "v1", n_layers=2, size=20_000, seed=i + 1)
    store = str(tmp_path / "store")
    jobs = [(f"oci:{tmp_path}/src{i % 4}:v1", store, f"localhost/app:{i}") for i in range(8)]
    with ProcessPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(_copy_with_tag, jobs)) == [0] * 8
    names = json.loads(imagetool("images", "--json", env={"IMAGETOOL_STORE": store}).stdout)
    assert sorted(n for image in names for n in image["names"]) == [f"localhost/app:{i}" for i in range(8)]
    for i in range(8):
        tool(["umoci", "stat", "--image", f"{store}:localhost/app:{i}"])


def test_gc_removes_only_unreachable_blobs(tmp_path: Path) -> None:
    keep = random_image(tmp_path / "s", "keep", seed=1)
    drop = random_image(tmp_path / "s", "drop", seed=2)
    store = LayoutStore.open(tmp_path / "s")
    store.update_index(lambda entries: [d for d in entries if d.ref_name == "keep"])
    stale = tmp_path / "s" / "blobs" / "sha256" / (TEMP_PREFIX + "stale")
    stale.write_bytes(b"partial")  # a killed writer's, written to a minute ago
    os.utime(stale, (stale.stat().st_mtime - 60,) * 2)
    dropped = json.loads(store.read_blob(drop.digest))
    result = collect(store)
    assert set(result.removed) == {drop.digest, Digest.parse(dropped["config"]["digest"]),
                                   *(Digest.parse(layer["digest"]) for layer in dropped["layers"])}
    manifest = json.loads(store.read_blob(keep.digest))
    for d in [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]:
        assert store.has_blob(Digest.parse(d))
    assert not list((tmp_path / "s" / "blobs" / "sha256").glob(TEMP_PREFIX + "*"))
    tool(["umoci", "stat", "--image", f"{tmp_path}/s:keep"])


def test_killed_writer_leaves_store_consistent(tmp_path: Path) -> None:
    """A copy killed mid-blob leaves temp files only; the layout still reads and gc cleans up."""
    import signal
    import subprocess
    import sys
    import time

    random_image(tmp_path / "src", "v1", n_layers=1, size=30 << 20, compression=None)
    random_image(tmp_path / "dst", "old", seed=9)
    before = (tmp_path / "dst" / "index.json").read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "imagetool", "copy", "-q", "--dest-compress-format", "zstd",
                             "--dest-compress-level", "19", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:new"])
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None and not partial:  # wait until it is mid-blob
        # the layer's, not the config's (a few hundred bytes, written beside the layers and renamed at once)
        partial = [p for p in (tmp_path / "dst").rglob(TEMP_PREFIX + "*")
                   if p.is_file() and p.stat().st_size > 1 << 16]
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial and proc.returncode == -signal.SIGKILL, "the copy finished or never wrote before the kill"
    assert all(p.exists() for p in partial)  # the kill left the temp file, as a crash would
    assert (tmp_path / "dst" / "index.json").read_bytes() == before
    tool(["umoci", "stat", "--image", f"{tmp_path}/dst:old"])
    time.sleep(GRACE + 0.1)  # what a writer touched in the last GRACE seconds may still be in use
    collect(LayoutStore.open(tmp_path / "dst"))
    assert not [p for p in (tmp_path / "dst").rglob(TEMP_PREFIX + "*")]
    assert os.path.exists(tmp_path / "dst" / "oci-layout")
