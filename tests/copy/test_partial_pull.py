"""Partial pulls of zstd:chunked layers into the local store, through a real registry behind a recording
proxy: only missing file contents cross the wire, the snapshot equals a full unpack file by file, and
hostile TOCs are refused in one line with nothing published."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from imagetool.digest import Digest
from imagetool.layer import chunked, chunked_toc
from imagetool.layer.chunked_toc import TOCError
from imagetool.layer.unpack import UnpackOptions, unpack
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore
from tests.lib.cli import imagetool, one_line_error
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import Layer, tar_bytes, write_image
from tests.lib.registry import Registry

FILE = 256 << 10


def files(version: int) -> dict[str, bytes | str | None]:
    rng = random.Random(7)
    out: dict[str, bytes | str | None] = {"app/": None, "app/sub/": None}
    for i in range(12):
        out[f"app/sub/f{i}.bin" if i % 2 else f"app/f{i}.bin"] = rng.randbytes(FILE)
    out["app/same-as-f0.bin"] = out["app/f0.bin"]  # two names, one content
    out["app/small.txt"] = "small\n"
    out["app/empty"] = b""
    out["app/link"] = "->f0.bin"
    if version == 2:
        out["app/f4.bin"] = random.Random(99).randbytes(FILE)  # the one change
    return out


def _image(tmp: Path, name: str, tar: bytes) -> Path:
    layout = tmp / f"layout-{name}"
    write_image(layout, "v", [Layer(tar, Digest.of(tar), "application/vnd.oci.image.layer.v1.tar")])
    return layout


def _listing(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("f", st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path))
            else:
                out[rel] = ("d", st.st_mode, st.st_mtime_ns)
    return out


def _full_unpack(tar: bytes, dest: Path) -> dict[str, tuple[object, ...]]:
    dest.mkdir()
    unpack(io.BytesIO(tar), dest, UnpackOptions(whiteouts="overlay"))
    return _listing(dest)


def _snapshot(store: Path, tar: bytes) -> Path:
    return store / "snapshots/sha256" / hashlib.sha256(tar).hexdigest() / "fs"


@pytest.fixture
def proxy(plain_registry: Registry) -> FaultProxy:
    p = FaultProxy(plain_registry.host)
    yield p  # type: ignore[misc]
    p.close()


def _push(tmp: Path, proxy: FaultProxy, name: str, tar: bytes) -> dict[str, object]:
    layout = _image(tmp, name, tar)
    imagetool("copy", "-q", "--dest-tls-verify=false", "--dest-compress-format", "zstd:chunked",
              f"oci:{layout}:v", f"{proxy.ref('app')}:{name}")
    raw = imagetool("inspect", "--raw", "--tls-verify=false", f"{proxy.ref('app')}:{name}").stdout
    return json.loads(raw)["layers"][0]  # type: ignore[no-any-return]


def _pull(proxy: FaultProxy, name: str, store: Path, **env: str) -> str:
    proxy.records.clear()
    return imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:{name}", f"localhost/app:{name}",
                     env={"IMAGETOOL_STORE": str(store), **env}).stdout


def test_partial_pull_round_trip_into_a_fresh_store_and_one_holding_v1(tmp_path: Path, proxy: FaultProxy) -> None:
    tar1, tar2 = tar_bytes(files(1), mtime=1_700_000_000), tar_bytes(files(2), mtime=1_700_000_000)
    _push(tmp_path, proxy, "v1", tar1)
    layer2 = _push(tmp_path, proxy, "v2", tar2)
    full2 = _full_unpack(tar2, tmp_path / "full2")

    # a fresh store: everything is fetched, by ranges; the blob is not kept, the snapshot is made
    fresh = tmp_path / "fresh"
    out = _pull(proxy, "v2", fresh)
    assert "partial: 13 of 14 files fetched" in out  # two names share one content
    assert _listing(_snapshot(fresh, tar2)) == full2
    assert all(r.range for r in proxy.records if "/blobs/sha256:" in r.path and r.method == "GET"
               and r.path.endswith(str(layer2["digest"])))

    # the blob was not kept: a copy out of the store that needs it fetches it then, from where it came
    assert not LayoutStore.open(fresh).has_blob(Digest.parse(str(layer2["digest"])))
    proxy.records.clear()
    imagetool("copy", "-q", "localhost/app:v2", f"oci:{tmp_path}/out:v2", env={"IMAGETOOL_STORE": str(fresh)})
    assert any(r.method == "GET" and r.path.endswith(str(layer2["digest"])) and not r.range for r in proxy.records)
    assert (tmp_path / "out/blobs/sha256" / str(layer2["digest"]).split(":")[1]).stat().st_size == layer2["size"]
    assert LayoutStore.open(fresh).has_blob(Digest.parse(str(layer2["digest"])))

    # a store holding v1 (its snapshot made from the whole blob): only the changed file crosses the wire
    warm = tmp_path / "warm"
    _pull(proxy, "v1", warm, IMAGETOOL_PARTIAL_PULLS="0")
    lstore = LayoutStore.open(warm)
    config1 = json.loads(imagetool("inspect", "--config", "localhost/app:v1",
                                   env={"IMAGETOOL_STORE": str(warm)}).stdout)
    m1 = json.loads(imagetool("inspect", "--raw", "localhost/app:v1", env={"IMAGETOOL_STORE": str(warm)}).stdout)
    from imagetool.descriptor import Descriptor

    SnapshotStore(lstore).prepare([(Descriptor.from_dict(m1["layers"][0]),
                                    Digest.parse(config1["rootfs"]["diff_ids"][0]))])
    out = _pull(proxy, "v2", warm)
    assert "partial: 1 of 14 files fetched" in out
    assert _listing(_snapshot(warm, tar2)) == full2
    sent = proxy.response_bytes(path=str(layer2["digest"]))
    assert 0 < sent < FILE + int(layer2["size"]) // 10, (sent, layer2["size"])  # type: ignore[call-overload]

    # and one holding v1 pulled partially (its index comes from its TOC): the same
    warm2 = tmp_path / "warm2"
    _pull(proxy, "v1", warm2)
    proxy.records.clear()
    out = imagetool("pull", "--tls-verify=false", f"{proxy.host}/app:v2", env={"IMAGETOOL_STORE": str(warm2)}).stdout
    assert "partial: 1 of 14 files fetched" in out  # `pull` is a copy into the local store: the same path
    # two requests for the layer: the TOC, tar-split and footer in one range request, then the missing content
    asked = [r for r in proxy.records if r.method == "GET" and r.path.endswith(str(layer2["digest"]))]
    assert len(asked) == 2 and all(r.status == 206 for r in asked), [(r.status, r.range) for r in asked]
    assert _listing(_snapshot(warm2, tar2)) == full2
    tree = _snapshot(warm2, tar2)
    assert (tree / "app/f0.bin").stat().st_nlink >= 2 and (tree / "app/f4.bin").stat().st_nlink == 1  # v1 linked


def test_a_registry_that_ignores_ranges_gets_the_whole_blob_copy(tmp_path: Path, proxy: FaultProxy) -> None:
    tar = tar_bytes(files(1), mtime=1_700_000_000)
    layer = _push(tmp_path, proxy, "v1", tar)
    proxy.add("GET", r"/blobs/sha256:", times=100, strip_range=True)
    store = tmp_path / "store"
    out = _pull(proxy, "v1", store)
    assert "no ranges: whole blob" in out
    assert LayoutStore.open(store).has_blob(Digest.parse(str(layer["digest"])))


def test_a_registry_that_serves_one_range_a_request_gets_single_range_requests(tmp_path: Path,
                                                                                proxy: FaultProxy) -> None:
    tar1, tar2 = tar_bytes(files(1), mtime=1_700_000_000), tar_bytes(files(2), mtime=1_700_000_000)
    for name, tar in (("v1", tar1), ("v2", tar2)):
        _push(tmp_path, proxy, name, tar)
    store = tmp_path / "store"
    _pull(proxy, "v1", store)
    # v2 again, with two changed files far apart: two ranges, of which the server answers only the first
    tar3 = tar_bytes({**files(2), "app/sub/f11.bin": b"x" * FILE}, mtime=1_700_000_000)
    _push(tmp_path, proxy, "v3", tar3)
    proxy.add("GET", r"/blobs/sha256:", times=100, first_range=True)
    assert "partial: 2 of 14 files fetched" in _pull(proxy, "v3", store)
    ranged = [r for r in proxy.records if r.method == "GET" and r.range]
    assert any("," in r.range for r in ranged) and any("," not in r.range for r in ranged[1:])
    assert _listing(_snapshot(store, tar3)) == _full_unpack(tar3, tmp_path / "full3")


# -- hostile TOCs


def _forge(tar: bytes, edit: Callable[[dict, dict], None]) -> tuple[bytes, dict[str, str]]:  # type: ignore[type-arg]
    """A chunked blob whose TOC (and annotations) `edit` changed; the annotations are made to match the new
    TOC unless `edit` set them itself (a TOC that lies about its digest)."""
    out = io.BytesIO()
    w = chunked.ChunkedWriter(out)
    w.write(tar)
    ann = w.close()
    blob = out.getvalue()
    lay = chunked_toc.layout(ann, len(blob))
    dec = zstandard.ZstdDecompressor()
    toc = json.loads(dec.decompress(blob[lay.toc.offset:lay.toc.end], max_output_size=lay.toc.raw_length))
    ts = blob[lay.tarsplit.offset:lay.tarsplit.end]
    new_ann = dict(ann)
    edit(toc, new_ann)
    raw = json.dumps(toc).encode()
    ctoc = zstandard.ZstdCompressor().compress(raw)
    head = blob[:lay.content_end]
    toc_off = len(head) + 8
    ts_off = toc_off + len(ctoc) + 8
    blob = head + chunked.skippable(ctoc) + chunked.skippable(ts) + chunked.skippable(
        chunked.footer(toc_off, len(ctoc), len(raw), ts_off, len(ts), lay.tarsplit.raw_length))
    fixed = {chunked.TOC_CHECKSUM: "sha256:" + hashlib.sha256(ctoc).hexdigest(),
             chunked.TOC_POSITION: f"{toc_off}:{len(ctoc)}:{len(raw)}:1",
             chunked.TARSPLIT_POSITION: f"{ts_off}:{len(ts)}:{lay.tarsplit.raw_length}"}
    for key, value in fixed.items():
        if new_ann.get(key) == ann.get(key):
            new_ann[key] = value
    return blob, new_ann


def _entry(toc: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in toc["entries"] if e["name"] == name)


HOSTILE: dict[str, Callable[[dict, dict], None]] = {  # type: ignore[type-arg]
    "toc digest lies": lambda t, a: a.update({chunked.TOC_CHECKSUM: "sha256:" + "0" * 64}),
    "position beyond the blob": lambda t, a: a.update({chunked.TOC_POSITION: "99999999:10:10:1"}),
    "malformed position": lambda t, a: a.update({chunked.TARSPLIT_POSITION: "1:-2:3"}),
    "name climbs out": lambda t, a: _entry(t, "app/small.txt").update(name="../../etc/passwd"),
    "file range beyond the content": lambda t, a: _entry(t, "app/f0.bin").update(endOffset=1 << 40),
    "overlapping ranges": lambda t, a: _entry(t, "app/f2.bin").update(offset=_entry(t, "app/f0.bin")["offset"]),
    "negative size": lambda t, a: _entry(t, "app/f2.bin").update(size=-1),
    "huge size": lambda t, a: _entry(t, "app/f2.bin").update(size=1 << 50),
    "size disagrees with tar-split": lambda t, a: _entry(t, "app/small.txt").update(size=5),
    "duplicate name": lambda t, a: t["entries"].append(dict(_entry(t, "app/small.txt"))),
    "tar-split digest lies": lambda t, a: t.update(tarSplitDigest="sha256:" + "1" * 64),
    "not version 1": lambda t, a: t.update(version=2),
    "link with a size": lambda t, a: _entry(t, "app/link").update(size=10),
    "chunk without its file": lambda t, a: t["entries"].insert(0, {"type": "chunk", "name": "x", "offset": 5}),
}


def _parse_all(blob: bytes, ann: dict[str, str]) -> None:
    lay = chunked_toc.layout(ann, len(blob))
    toc = chunked_toc.parse_toc(blob[lay.toc.offset:lay.toc.end], lay)
    with chunked_toc.open_tarsplit(blob[lay.tarsplit.offset:lay.tarsplit.end], lay, toc, ann) as spool:
        def content(f: chunked_toc.FileRange) -> io.BytesIO:
            return io.BytesIO(zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(blob[f.offset:f.end]), read_across_frames=True).read())
        for _ in chunked_toc.rebuild(spool, toc, content):
            pass


def test_the_unedited_forgery_parses() -> None:
    _parse_all(*_forge(tar_bytes(files(1)), lambda t, a: None))


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_tocs_are_refused(case: str) -> None:
    blob, ann = _forge(tar_bytes(files(1)), HOSTILE[case])
    with pytest.raises(TOCError) as err:
        _parse_all(blob, ann)
    assert "\n" not in str(err.value) and str(err.value).startswith("zstd:chunked: ")


def _push_forged(tmp: Path, proxy: FaultProxy, tag: str, tar: bytes, blob: bytes, ann: dict[str, str]) -> None:
    layout = _image(tmp, tag, tar)
    index = json.loads((layout / "index.json").read_text())
    mdigest = Digest.parse(index["manifests"][0]["digest"])
    manifest = json.loads((layout / "blobs/sha256" / mdigest.hex).read_bytes())
    d = Digest.of(blob)
    (layout / "blobs/sha256" / d.hex).write_bytes(blob)
    manifest["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": str(d),
                           "size": len(blob), "annotations": ann}]
    raw = json.dumps(manifest).encode()
    md = Digest.of(raw)
    (layout / "blobs/sha256" / md.hex).write_bytes(raw)
    index["manifests"][0].update(digest=str(md), size=len(raw))
    (layout / "index.json").write_text(json.dumps(index))
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v", f"{proxy.ref('app')}:{tag}")


def _lie(t: dict, a: dict) -> None:  # type: ignore[type-arg]
    _entry(t, "app/f2.bin")["digest"] = "sha256:" + "ab" * 32


def _borrow(t: dict, a: dict) -> None:  # type: ignore[type-arg]
    _entry(t, "app/f2.bin")["digest"] = _entry(t, "app/f0.bin")["digest"]  # another file's content stands in


@pytest.mark.parametrize("case, says", [
    ("content digest lies", "does not match the TOC's digest"),
    ("content digest borrowed", "the rebuilt layer does not match its diff_id"),
    ("name climbs out", "leaves the layer"),
    ("overlapping ranges", "overlap"),
])
def test_hostile_layers_from_a_registry_publish_nothing(tmp_path: Path, proxy: FaultProxy, case: str,
                                                        says: str) -> None:
    tar = tar_bytes(files(1))
    edit = {"content digest lies": _lie, "content digest borrowed": _borrow}.get(case) or HOSTILE[case]
    blob, ann = _forge(tar, edit)
    _push_forged(tmp_path, proxy, "bad", tar, blob, ann)
    store = tmp_path / "store"
    proc = imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:bad", "localhost/app:bad",
                     env={"IMAGETOOL_STORE": str(store)}, check=False)
    assert says in one_line_error(proc)
    snaps = store / "snapshots/sha256"
    assert not snaps.exists() or not os.listdir(snaps)
    assert "app" not in imagetool("images", env={"IMAGETOOL_STORE": str(store)}).stdout


def test_footer_layout_is_as_annotated() -> None:
    blob, ann = _forge(tar_bytes(files(1)), lambda t, a: None)
    lay = chunked_toc.layout(ann, len(blob))
    assert struct.unpack("<7Q", blob[-64:-8])[:3] == (lay.toc.offset, lay.toc.length, lay.toc.raw_length)


def test_rootless_partial_pull(tmp_path: Path, proxy: FaultProxy, rootless_user) -> None:  # type: ignore[no-untyped-def]
    """Rootless, the snapshot is unpacked in the store's user namespace; reuse and links work there too."""
    tar1, tar2 = tar_bytes(files(1), mtime=1_700_000_000), tar_bytes(files(2), mtime=1_700_000_000)
    _push(tmp_path, proxy, "v1", tar1)
    _push(tmp_path, proxy, "v2", tar2)
    store = rootless_user.mkdtemp() / "store"
    env = {"IMAGETOOL_STORE": str(store)}
    for name in ("v1", "v2"):
        out = rootless_user.imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:{name}",
                                      f"localhost/app:{name}", env=env).stdout
    assert "partial: 1 of 14 files fetched" in out
    full = _full_unpack(tar2, tmp_path / "full")
    got = _listing(_snapshot(store, tar2))
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in full.items()}
    tree = _snapshot(store, tar2)
    assert (tree / "app/f0.bin").stat().st_nlink >= 2 and (tree / "app/f4.bin").stat().st_nlink == 1  # v1 linked


def test_a_footer_that_disagrees_with_the_annotations_is_refused(tmp_path: Path, proxy: FaultProxy) -> None:
    tar = tar_bytes(files(1))
    blob, ann = _forge(tar, lambda t, a: None)
    blob = blob[:-64] + struct.pack("<Q", 12345) + blob[-56:]  # the TOC offset the footer gives
    _push_forged(tmp_path, proxy, "bad", tar, blob, ann)
    store = tmp_path / "store"
    proc = imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:bad", "localhost/app:bad",
                     env={"IMAGETOOL_STORE": str(store)}, check=False)
    assert "the footer and the annotations disagree" in one_line_error(proc)
    assert not (store / "snapshots/sha256").exists() or not os.listdir(store / "snapshots/sha256")


def test_a_layer_without_a_tar_split_is_pulled_whole(tmp_path: Path, proxy: FaultProxy) -> None:
    """Older writers put no tar-split in: nothing to rebuild the tar from, so no partial pull."""
    tar = tar_bytes(files(1))
    blob, ann = _forge(tar, lambda t, a: None)
    del ann[chunked.TARSPLIT_POSITION]
    _push_forged(tmp_path, proxy, "old", tar, blob, ann)
    store = tmp_path / "store"
    out = imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:old", "localhost/app:old",
                    env={"IMAGETOOL_STORE": str(store)}).stdout
    assert "no tar-split: whole blob" in out
    assert LayoutStore.open(store).has_blob(Digest.of(blob))


def test_the_rebuild_waits_for_a_content_still_on_the_wire_and_a_cut_fetch_publishes_nothing(
        tmp_path: Path, proxy: FaultProxy) -> None:
    """The missing contents are fetched in a thread beside the rebuild: on a slow link the rebuild reaches
    f4.bin before it has arrived and waits for it; a fetch cut off mid-way fails the pull in one line,
    with no snapshot published and no fetch directory left behind."""
    tar1, tar2 = tar_bytes(files(1), mtime=1_700_000_000), tar_bytes(files(2), mtime=1_700_000_000)
    _push(tmp_path, proxy, "v1", tar1)
    _push(tmp_path, proxy, "v2", tar2)
    full2 = _full_unpack(tar2, tmp_path / "full2")

    slow = tmp_path / "slow"
    _pull(proxy, "v1", slow)
    proxy.rate = 1 << 20  # the changed 256 KiB file takes a quarter of a second
    try:
        out = _pull(proxy, "v2", slow)
    finally:
        proxy.rate = None
    assert "partial: 1 of 14 files fetched" in out
    assert _listing(_snapshot(slow, tar2)) == full2

    cut = tmp_path / "cut"
    _pull(proxy, "v1", cut)
    meta = 32 << 10  # the metadata request (TOC, tar-split, footer: a few KiB) passes, the 256 KiB file does not
    proxy.add("GET", r"/blobs/sha256:", times=100, reset_after=meta)
    proc = imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:v2", "localhost/app:v2",
                     env={"IMAGETOOL_STORE": str(cut)}, check=False)
    proxy.clear()
    assert proc.returncode != 0
    assert "zstd:chunked: fetching the missing contents:" in one_line_error(proc), proc.stderr
    assert not _snapshot(cut, tar2).parent.exists()
    assert [n for n in os.listdir(cut / "snapshots") if n != "sha256"] == []  # the fetch's workdir is gone
    assert "app:v2" not in imagetool("images", env={"IMAGETOOL_STORE": str(cut)}).stdout.replace(" ", ":")
