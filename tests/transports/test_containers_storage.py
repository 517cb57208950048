"""containers-storage: imagetool and podman's tools (skopeo, buildah) share one containers/storage store.

Every test uses its own graphroot/runroot under tmp_path, never the machine's /var/lib/containers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.errors import InvalidReference
from imagetool.layer import whiteout as wh
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.transports import parse_image_name
from imagetool.transports.containers_storage import StorageReference
from imagetool.transports.containers_storage.store import big_data_name
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.images import Layer, busybox_files, busybox_image, make_layer, write_image
from tests.lib.registry import Registry
from tests.lib.rootless import RootlessUser

pytestmark = pytest.mark.usefixtures("registry_env")


class Store:
    """A private store: its reference prefix and what is in it."""

    def __init__(self, base: Path, name: str = "cs") -> None:
        self.graph = base / f"{name}-graph"
        self.run = base / f"{name}-run"

    def ref(self, name: str) -> str:
        return f"containers-storage:[overlay@{self.graph}+{self.run}]{name}"

    def buildah(self, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
        return tool(["buildah", "--root", str(self.graph), "--runroot", str(self.run),
                     "--storage-driver", "overlay", *args], check=check)

    def layers(self) -> list[dict[str, object]]:
        path = self.graph / "overlay-layers" / "layers.json"
        return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else []

    def images(self) -> list[dict[str, object]]:
        path = self.graph / "overlay-images" / "images.json"
        return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else []

    def unmount(self) -> None:
        """containers/storage leaves its graphroot's overlay directory bind-mounted: undo that."""
        roots = (str(self.graph) + "/", str(self.run) + "/")
        for _ in range(16):  # writers racing each mount it again: one umount per layer of the stack
            with open("/proc/self/mountinfo") as f:
                points = [p for p in (line.split()[4] for line in f) if (p + "/").startswith(roots)]
            if not points:
                return
            for point in sorted(points, reverse=True):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def diff_dirs(self) -> set[str]:
        root = self.graph / "overlay"
        return {p.name for p in root.iterdir() if (p / "diff").is_dir()} if root.exists() else set()


@pytest.fixture
def cs(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.unmount()


def _push(reg: Registry, layout: Path, tag: str, repo: str) -> str:
    ref = reg.ref(repo)
    imagetool("copy", "-q", *reg.tls_flags("dest-"), *reg.creds_flags("dest-"), f"oci:{layout}:{tag}", ref)
    return ref


def _layout_layers(layout: Path, tag: str) -> tuple[list[str], list[str]]:
    """(layer digests, config diff_ids) of an image in an OCI layout."""
    store = LayoutStore.open(layout)
    manifest = json.loads(store.read_blob(refs.resolve(store, tag).digest))
    config = json.loads(store.read_blob(Digest.parse(manifest["config"]["digest"])))
    return [layer["digest"] for layer in manifest["layers"]], config["rootfs"]["diff_ids"]


def test_reference_syntax(tmp_path: Path) -> None:
    ref = parse_image_name(f"containers-storage:[overlay@{tmp_path}/g+{tmp_path}/r]busybox")
    assert isinstance(ref, StorageReference)
    assert str(ref.named) == "docker.io/library/busybox:latest"
    assert ref.spec is not None and (ref.spec.driver, ref.spec.graphroot, ref.spec.runroot) == \
        ("overlay", f"{tmp_path}/g", f"{tmp_path}/r")
    only_root = parse_image_name(f"containers-storage:[{tmp_path}/g]quay.io/a/b:2")
    assert isinstance(only_root, StorageReference) and only_root.spec is not None
    assert (only_root.spec.graphroot, str(only_root.named)) == (f"{tmp_path}/g", "quay.io/a/b:2")
    hexid = "a" * 64
    store = f"[overlay@{tmp_path}/g+{tmp_path}/r]"
    at_id = parse_image_name(f"containers-storage:{store}@{hexid}")
    assert isinstance(at_id, StorageReference) and (at_id.named, at_id.image_id) == (None, hexid)
    both = parse_image_name(f"containers-storage:{store}localhost/x:1@{hexid}")
    assert isinstance(both, StorageReference) and (str(both.named), both.image_id) == ("localhost/x:1", hexid)
    digested = parse_image_name(f"containers-storage:{store}x@sha256:{hexid}")
    assert isinstance(digested, StorageReference) and str(digested.named) == f"docker.io/library/x@sha256:{hexid}"
    assert str(both) == f"containers-storage:{store}localhost/x:1@{hexid}"
    # (IMAGEID alone, and id prefixes, are looked up in the store: test_imagetool_reads_what_skopeo_wrote)
    for bad in ("[overlay@relative/g]x", "[overlay@/g", "[]x", f"{store}x@nothex", f"{store}{hexid}"):
        with pytest.raises(InvalidReference):
            parse_image_name("containers-storage:" + bad)
    # the big-data file names containers/storage uses
    assert big_data_name("manifest") == "manifest"
    assert big_data_name("manifest-sha256:ab") == "=bWFuaWZlc3Qtc2hhMjU2OmFi"


def test_other_skopeo_transports_stay_refused() -> None:
    for name in ("docker-daemon", "sif", "ostree"):
        proc = imagetool("inspect", f"{name}:x", check=False)
        assert f"transport {name!r} is not supported by imagetool" in one_line_error(proc)


def test_skopeo_and_buildah_read_what_imagetool_wrote(cs: Store, plain_registry: Registry, tmp_path: Path) -> None:
    busybox_image(tmp_path / "src", "v1")
    src = _push(plain_registry, tmp_path / "src", "v1", "cs/busybox:v1")
    imagetool("copy", "-q", "--src-tls-verify=false", src, cs.ref("localhost/x:1"))

    # our files are where containers/storage keeps them
    [layer] = cs.layers()
    [image] = cs.images()
    blob_digests, diff_ids = _layout_layers(tmp_path / "src", "v1")
    assert layer["id"] == Digest.parse(diff_ids[0]).hex            # containers/image's id of a base layer
    assert (layer["diff-digest"], layer["compressed-diff-digest"]) == (diff_ids[0], blob_digests[0])
    assert layer["compression"] == 2 and layer["uidset"] == [0]
    assert (cs.graph / "overlay-layers" / f"{layer['id']}.tar-split.gz").exists()
    link = (cs.graph / "overlay" / str(layer["id"]) / "link").read_text()
    assert os.readlink(cs.graph / "overlay" / "l" / link) == f"../{layer['id']}/diff"
    assert image["names"] == ["localhost/x:1"] and image["layer"] == layer["id"]
    assert (cs.graph / "overlay" / str(layer["id"]) / "diff" / "bin" / "busybox").read_bytes() == \
        Path("/bin/busybox").read_bytes()

    info = json.loads(skopeo("inspect", cs.ref("localhost/x:1")).stdout)
    ours = json.loads(imagetool("inspect", cs.ref("localhost/x:1")).stdout)
    assert info["Digest"] == ours["Digest"] == image["digest"]
    assert info["Layers"] == ours["Layers"] == blob_digests
    # skopeo copies the layers out of the store: the tar rebuilt from our tar-split hashes to the diff_id
    skopeo("copy", cs.ref("localhost/x:1"), f"oci:{tmp_path}/out:1")
    out_layers, out_diff_ids = _layout_layers(tmp_path / "out", "1")
    assert out_diff_ids == diff_ids and out_layers != diff_ids  # gzip-compressed again for the oci: layout

    listing = cs.buildah("images", "--format", "{{.Name}}:{{.Tag}} {{.ID}}").stdout.split()
    assert listing == ["localhost/x:1", str(image["id"])[:12]]
    container = cs.buildah("from", "localhost/x:1").stdout.strip()
    mount = Path(cs.buildah("mount", container).stdout.strip())
    assert (mount / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    cs.buildah("umount", container)
    ran = cs.buildah("run", container, "--", "/bin/busybox", "sh", "-c", "echo ran-in-buildah | tee /made-by-run")
    assert ran.stdout.strip() == "ran-in-buildah"
    # an image in use by a container is not deleted from under it
    assert "in use" in one_line_error(imagetool("delete", cs.ref("localhost/x:1"), check=False))
    # buildah commits a layer of its own on ours; imagetool copies that image out
    cs.buildah("commit", "-q", container, "localhost/x:2")
    cs.buildah("rm", container)
    imagetool("copy", "-q", cs.ref("localhost/x:2"), f"oci:{tmp_path}/committed:2")
    committed_layers, committed_diff_ids = _layout_layers(tmp_path / "committed", "2")
    assert committed_diff_ids[0] == diff_ids[0] and len(committed_diff_ids) == 2
    tool(["umoci", "unpack", "--image", f"{tmp_path}/committed:2", str(tmp_path / "bundle")])
    assert (tmp_path / "bundle" / "rootfs" / "made-by-run").read_text() == "ran-in-buildah\n"


def test_imagetool_reads_what_skopeo_wrote(cs: Store, plain_registry: Registry, tmp_path: Path) -> None:
    busybox_image(tmp_path / "src", "v1", oci=False)
    src = _push(plain_registry, tmp_path / "src", "v1", "cs/skopeo-wrote:v1")
    skopeo("copy", "--src-tls-verify=false", src, cs.ref("localhost/y:1"))
    [image] = cs.images()

    ours = json.loads(imagetool("inspect", cs.ref("localhost/y:1")).stdout)
    theirs = json.loads(skopeo("inspect", cs.ref("localhost/y:1")).stdout)
    assert ours["Digest"] == theirs["Digest"] == image["digest"]
    assert json.loads(imagetool("inspect", "--config", cs.ref("localhost/y:1")).stdout)["rootfs"]["diff_ids"] == \
        _layout_layers(tmp_path / "src", "v1")[1]
    # the same image found by id, by id prefix and as @id
    for form in (str(image["id"]), str(image["id"])[:12], "@" + str(image["id"])):
        assert json.loads(imagetool("inspect", cs.ref(form)).stdout)["Digest"] == image["digest"]

    imagetool("copy", "-q", cs.ref("localhost/y:1"), f"oci:{tmp_path}/out:1")
    layers, diff_ids = _layout_layers(tmp_path / "out", "1")
    assert diff_ids == _layout_layers(tmp_path / "src", "v1")[1]
    assert layers != diff_ids  # copied out gzip-compressed, as an oci: layout wants
    tool(["umoci", "unpack", "--image", f"{tmp_path}/out:1", str(tmp_path / "bundle")])
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    skopeo("inspect", f"oci:{tmp_path}/out:1")


def test_layers_are_shared_with_podman_tools(cs: Store, tmp_path: Path) -> None:
    base = make_layer(busybox_files())
    top = make_layer({"etc/": None, "etc/app.conf": b"setting=1\n"})
    write_image(tmp_path / "a", "1", [base])
    write_image(tmp_path / "b", "1", [base, top])
    write_image(tmp_path / "c", "1", [base, make_layer({"srv/": None, "srv/c": b"c\n"})])
    imagetool("copy", "-q", f"oci:{tmp_path}/a:1", cs.ref("localhost/a:1"))
    assert len(cs.diff_dirs()) == 1
    imagetool("copy", "-q", f"oci:{tmp_path}/b:1", cs.ref("localhost/b:1"))
    assert len(cs.diff_dirs()) == 2  # only the top layer is new
    ids = {str(e["id"]) for e in cs.layers()}
    # skopeo finds our base layer by containers/image's layer id and writes only its own top layer
    skopeo("copy", f"oci:{tmp_path}/c:1", cs.ref("localhost/c:1"))
    assert len(cs.diff_dirs()) == 3 and ids <= {str(e["id"]) for e in cs.layers()}
    c_top = next(e for e in cs.layers() if str(e["id"]) not in ids)
    assert c_top["parent"] == base.diff_id.hex
    # diff directories get the mode containers/storage gives them (these tars have no "./" member)
    modes = {d: stat.S_IMODE(os.stat(cs.graph / "overlay" / d / "diff").st_mode) for d in cs.diff_dirs()}
    assert set(modes.values()) == {0o555}, modes
    # and the same image written again by skopeo is the same image: nothing new
    skopeo("copy", f"oci:{tmp_path}/b:1", cs.ref("localhost/b:again"))
    assert len(cs.diff_dirs()) == 3 and len(cs.images()) == 3

    # delete takes the image and its layers nothing else uses, as skopeo delete does
    imagetool("delete", cs.ref("localhost/c:1"))
    assert len(cs.diff_dirs()) == 2 and {str(e["id"]) for e in cs.layers()} == ids
    assert [sorted(i["names"]) for i in cs.images()] == [["localhost/a:1"], ["localhost/b:1", "localhost/b:again"]]
    skopeo("delete", cs.ref("localhost/b:1"))
    assert {str(e["id"]) for e in cs.layers()} == {base.diff_id.hex} and len(cs.diff_dirs()) == 1
    imagetool("delete", cs.ref("localhost/a:1"))
    assert cs.layers() == [] and cs.images() == [] and cs.diff_dirs() == set()
    proc = imagetool("delete", cs.ref("localhost/a:1"), check=False)
    assert proc.returncode == 2 and "does not resolve to an image ID" in one_line_error(proc)


def test_imagetool_and_skopeo_write_one_store_at_once(cs: Store, tmp_path: Path) -> None:
    """Both take containers/storage's locks: writers racing on shared layers leave one consistent store."""
    base = make_layer(busybox_files())
    for i in range(4):
        write_image(tmp_path / f"img{i}", "1", [base, make_layer({f"srv{i}/": None, f"srv{i}/f": b"%d" % i})])
    cs.graph.mkdir(parents=True)
    procs = []
    for i in range(4):
        for who in ("imagetool", "skopeo"):
            argv = ([sys.executable, "-m", "imagetool", "copy", "-q"] if who == "imagetool"
                    else ["skopeo", "--insecure-policy", "copy", "-q"])
            procs.append(subprocess.Popen([*argv, f"oci:{tmp_path}/img{i}:1", cs.ref(f"localhost/{who}:{i}")],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    ids = [str(e["id"]) for e in cs.layers()]
    assert len(ids) == len(set(ids)) == 5 and len(cs.diff_dirs()) == 5
    assert len(cs.images()) == 4
    names = sorted(cs.buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split())
    assert names == sorted(f"localhost/{who}:{i}" for i in range(4) for who in ("imagetool", "skopeo"))
    for i in range(4):
        skopeo("copy", cs.ref(f"localhost/imagetool:{i}"), f"oci:{tmp_path}/out{i}:1")
        imagetool("copy", "-q", cs.ref(f"localhost/skopeo:{i}"), f"oci:{tmp_path}/ours{i}:1")


def test_a_stored_layer_on_another_parent_is_rebuilt_not_fetched(cs: Store, tmp_path: Path) -> None:
    """The blob is in the store, but above another parent: the copy skips fetching it and commit makes
    the layer with the right id from the stored layer's exact tar (its tar-split)."""
    top = make_layer({"app/": None, "app/bin": b"\x7fELF" * 1000})
    write_image(tmp_path / "stacked", "1", [make_layer({"base": b"b"}), top])
    write_image(tmp_path / "alone", "1", [top])
    imagetool("copy", "-q", f"oci:{tmp_path}/stacked:1", cs.ref("localhost/stacked:1"))
    proc = imagetool("copy", f"oci:{tmp_path}/alone:1", cs.ref("localhost/alone:1"))
    out = proc.stdout + proc.stderr
    assert f"Copying blob {top.digest.hex[:12]} skipped: already exists" in out
    alone = next(e for e in cs.layers() if e["id"] == top.diff_id.hex)
    assert "parent" not in alone and alone["compressed-diff-digest"] == str(top.digest)
    assert len(cs.diff_dirs()) == 3
    skopeo("copy", cs.ref("localhost/alone:1"), f"oci:{tmp_path}/out:1")
    assert _layout_layers(tmp_path / "out", "1")[1] == [str(top.diff_id)]


def test_a_name_moves_to_the_newer_image(cs: Store, tmp_path: Path) -> None:
    write_image(tmp_path / "a", "1", [make_layer({"a": b"a"})])
    write_image(tmp_path / "b", "1", [make_layer({"b": b"b"})])
    imagetool("copy", "-q", f"oci:{tmp_path}/a:1", cs.ref("localhost/n:1"))
    imagetool("copy", "-q", f"oci:{tmp_path}/b:1", cs.ref("localhost/n:1"))
    names = [i.get("names") for i in cs.images()]
    assert names == [None, ["localhost/n:1"]]
    listing = cs.buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    assert sorted(listing) == ["<none>:<none>", "localhost/n:1"]


def _whiteout_layer() -> Layer:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("etc", tarfile.DIRTYPE), ("etc/.wh.hosts", tarfile.REGTYPE),
                           ("opt", tarfile.DIRTYPE), ("opt/.wh..wh..opq", tarfile.REGTYPE),
                           ("opt/kept", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            tar.addfile(info, io.BytesIO(b""))
        owned = tarfile.TarInfo("opt/owned")
        owned.uid, owned.gid, owned.size = 1234, 5678, 3
        tar.addfile(owned, io.BytesIO(b"own"))
    import gzip

    raw = buf.getvalue()
    return Layer(gzip.compress(raw, mtime=0), Digest.of(raw), "application/vnd.oci.image.layer.v1.tar+gzip")


def test_whiteouts_and_owners_as_the_overlay_driver_keeps_them(cs: Store, tmp_path: Path) -> None:
    base = make_layer({"etc/": None, "etc/hosts": b"h\n", "opt/": None, "opt/old": b"o\n"})
    layer = _whiteout_layer()
    write_image(tmp_path / "src", "1", [base, layer])
    imagetool("copy", "-q", f"oci:{tmp_path}/src:1", cs.ref("localhost/wh:1"))
    top = next(e for e in cs.layers() if e.get("parent"))
    diff = cs.graph / "overlay" / str(top["id"]) / "diff"
    st = os.lstat(diff / "etc" / "hosts")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(diff / "opt", wh.OPAQUE_XATTR) == b"y"
    assert (os.lstat(diff / "opt" / "owned").st_uid, os.lstat(diff / "opt" / "owned").st_gid) == (1234, 5678)
    assert top["uidset"] == [0, 1234] and top["gidset"] == [0, 5678]
    assert (cs.graph / "overlay" / str(top["id"]) / "lower").read_text() == \
        "l/" + (cs.graph / "overlay" / base.diff_id.hex / "link").read_text()
    # buildah sees the merged view: the whited-out file gone, the opaque directory holding only its own
    container = cs.buildah("from", "localhost/wh:1").stdout.strip()
    mount = Path(cs.buildah("mount", container).stdout.strip())
    assert not (mount / "etc" / "hosts").exists()
    assert sorted(os.listdir(mount / "opt")) == ["kept", "owned"]
    cs.buildah("rm", container)
    # skopeo and imagetool both rebuild the exact layer tar, whiteout entries included
    skopeo("copy", cs.ref("localhost/wh:1"), f"oci:{tmp_path}/by-skopeo:1")
    imagetool("copy", "-q", "--dest-compress-format", "gzip", cs.ref("localhost/wh:1"), f"oci:{tmp_path}/ours:1")
    expected = [str(base.diff_id), str(layer.diff_id)]
    assert _layout_layers(tmp_path / "by-skopeo", "1")[1] == expected
    assert _layout_layers(tmp_path / "ours", "1")[1] == expected


def test_a_hostile_layer_adds_nothing(cs: Store, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        evil = tarfile.TarInfo("evil")
        evil.type = tarfile.SYMTYPE
        evil.linkname = str(tmp_path / "outside")
        tar.addfile(evil)
        through = tarfile.TarInfo("evil/pwned")
        through.size = 5
        tar.addfile(through, io.BytesIO(b"owned"))
        link = tarfile.TarInfo("hard")
        link.type = tarfile.LNKTYPE
        link.linkname = "dir"          # a hard link to a directory: refused
        tar.addfile(link)
    raw = buf.getvalue()
    write_image(tmp_path / "src", "1", [make_layer({"ok": b"fine"}),
                                        Layer(raw, Digest.of(raw), "application/vnd.oci.image.layer.v1.tar")])
    (tmp_path / "outside").mkdir()
    proc = imagetool("copy", "-q", f"oci:{tmp_path}/src:1", cs.ref("localhost/evil:1"), check=False)
    assert "points at a directory" in one_line_error(proc)
    assert cs.layers() == [] and cs.images() == [] and cs.diff_dirs() == set()
    assert list((cs.graph / "overlay" / ".imagetool-staging").iterdir()) == []
    assert list((tmp_path / "outside").iterdir()) == []
    skopeo("inspect", f"oci:{tmp_path}/src:1")  # the store is still one containers/storage opens
    assert cs.buildah("images", "-q").stdout == ""


def test_inspect_of_a_missing_image(cs: Store, tmp_path: Path) -> None:
    write_image(tmp_path / "a", "1", [make_layer({"a": b"a"})])
    imagetool("copy", "-q", f"oci:{tmp_path}/a:1", cs.ref("localhost/a:1"))
    proc = imagetool("inspect", cs.ref("localhost/nope:1"), check=False)
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert f'reference "[overlay@{cs.graph}+{cs.run}]localhost/nope:1" does not resolve to an image ID' in line
    theirs = skopeo("inspect", cs.ref("localhost/nope:1"), check=False)
    assert "does not resolve to an image ID" in theirs.stderr


def test_rootless_default_store_is_shared_with_skopeo(rootless_user: RootlessUser) -> None:
    """An unprivileged user's default store ($XDG_DATA_HOME/containers/storage) in both directions, with
    the owners and whiteouts a rootless podman keeps (ids through the user's subordinate range)."""
    user = rootless_user
    work = user.mkdtemp()
    base = make_layer(busybox_files())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # a layer naming its root: another owner, mode 0750
        root = tarfile.TarInfo("./")
        root.type, root.mode, root.uid, root.gid = tarfile.DIRTYPE, 0o750, 1000, 1000
        tar.addfile(root)
        tar.addfile(tarfile.TarInfo("./x"), io.BytesIO(b""))
    own_root = Layer(buf.getvalue(), Digest.of(buf.getvalue()), "application/vnd.oci.image.layer.v1.tar")
    write_image(work / "src", "1", [base, _whiteout_layer(), own_root])
    conf = user.home / ".config" / "containers" / "storage.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text('[storage]\ndriver = "overlay"\n')  # (without it, skopeo 1.9 picks vfs here)
    user.give(work)
    user.give(user.home / ".config")
    graph = user.home / ".local" / "share" / "containers" / "storage"
    kept = graph.with_name("storage.kept")  # another test's store there (buildah's vfs one) comes back after
    if graph.exists():
        graph.rename(kept)
    try:
        user.imagetool("copy", "-q", f"oci:{work}/src:1", "containers-storage:localhost/rl:1", timeout=60)
        layers = json.loads((graph / "overlay-layers" / "layers.json").read_text())
        middle, top = [e for e in layers if e.get("parent")]
        owned = os.lstat(graph / "overlay" / str(middle["id"]) / "diff" / "opt" / "owned")
        assert (owned.st_uid, owned.st_gid) == (100000 + 1233, 100000 + 5677)  # container 1234 -> subordinate id
        root_st = os.stat(graph / "overlay" / str(top["id"]) / "diff")
        assert (stat.S_IMODE(root_st.st_mode), root_st.st_uid) == (0o750, 100000 + 999)
        info = json.loads(user.run(["skopeo", "inspect", "containers-storage:localhost/rl:1"]).stdout)
        assert len(info["Layers"]) == 3
        user.run(["skopeo", "copy", "containers-storage:localhost/rl:1", f"oci:{work}/by-skopeo:1"])
        assert _layout_layers(work / "by-skopeo", "1")[1] == _layout_layers(work / "src", "1")[1]
        # the reverse: skopeo writes, imagetool reads and copies out
        user.run(["skopeo", "copy", f"oci:{work}/src:1", "containers-storage:localhost/rl:2"])
        user.imagetool("copy", "-q", "containers-storage:localhost/rl:2", f"oci:{work}/ours:1")
        assert _layout_layers(work / "ours", "1")[1] == _layout_layers(work / "src", "1")[1]
    finally:  # (the test runs as root: it can take away what the user's namespace owns)
        shutil.rmtree(graph, ignore_errors=True)
        if kept.exists():
            kept.rename(graph)
        conf.unlink()


def test_signatures_are_kept_as_skopeo_keeps_them(cs: Store, tmp_path: Path) -> None:
    """skopeo and imagetool store one signed image into two stores: the same records and signature bytes;
    each reads the other's signatures (and so refuses to copy out with changed layers without
    --remove-signatures, as containers/image does)."""
    write_image(tmp_path / "src", "v1", [make_layer({"a": b"a"})])
    (tmp_path / "pw").write_text("secret\n")
    imagetool("generate-key", "--output-prefix", str(tmp_path / "k"), "--passphrase-file", str(tmp_path / "pw"))
    imagetool("--insecure-policy", "copy", "-q", "--sign-by-sigstore-private-key", str(tmp_path / "k.private"),
              "--sign-passphrase-file", str(tmp_path / "pw"), "--sign-identity", "example.com/app:v1",
              f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/signed")
    theirs = Store(tmp_path, "theirs")
    try:
        skopeo("copy", f"dir:{tmp_path}/signed", theirs.ref("localhost/s:1"))
        imagetool("--insecure-policy", "copy", "-q", f"dir:{tmp_path}/signed", cs.ref("localhost/s:1"))
        [mine], [their] = cs.images(), theirs.images()
        for key in ("id", "digest", "metadata", "big-data-sizes", "big-data-digests"):
            assert mine[key] == their[key], key
        assert sorted(map(str, mine["big-data-names"])) == sorted(map(str, their["big-data-names"]))
        sig = (tmp_path / "signed" / "signature-1").read_bytes()
        assert json.loads(str(mine["metadata"])) == {"signature-sizes": [len(sig)],
                                                     "signatures-sizes": {mine["digest"]: [len(sig)]}}
        image_dir = cs.graph / "overlay-images" / str(mine["id"])
        assert (image_dir / "signatures").read_bytes() == sig
        for store in (cs, theirs):
            proc = imagetool("--insecure-policy", "copy", store.ref("localhost/s:1"), f"dir:{tmp_path}/o", check=False)
            assert "invalidate its signatures" in one_line_error(proc)
            assert "Would invalidate signatures" in skopeo("copy", store.ref("localhost/s:1"), f"dir:{tmp_path}/o",
                                                           check=False).stderr
        imagetool("--insecure-policy", "copy", "-q", "--remove-signatures", cs.ref("localhost/s:1"),
                  f"dir:{tmp_path}/plain")
    finally:
        theirs.unmount()


def test_a_layer_without_its_tar_split_is_not_passed_off(cs: Store, tmp_path: Path) -> None:
    """Without the tar-split the layer's tar is made from its diff directory and checked against its
    diff-digest: a mismatch fails the copy (as it does skopeo's) and leaves no image behind."""
    write_image(tmp_path / "src", "1", [make_layer({"d/": None, "d/f": b"f\n"})])
    imagetool("copy", "-q", f"oci:{tmp_path}/src:1", cs.ref("localhost/t:1"))
    [layer] = cs.layers()
    (cs.graph / "overlay-layers" / f"{layer['id']}.tar-split.gz").unlink()
    proc = imagetool("copy", "-q", cs.ref("localhost/t:1"), f"oci:{tmp_path}/out:1", check=False)
    assert "has no tar-split, and the tar of its diff directory is not the layer it was" in one_line_error(proc)
    assert not (tmp_path / "out" / "index.json").exists() or "manifests\":[]" in \
        (tmp_path / "out" / "index.json").read_text().replace(" ", "")
    assert skopeo("copy", cs.ref("localhost/t:1"), f"oci:{tmp_path}/theirs:1", check=False).returncode != 0


def test_a_layer_left_incomplete_is_made_again(cs: Store, tmp_path: Path) -> None:
    """A layer flagged incomplete (a containers/storage writer killed mid-layer) is not taken as present."""
    write_image(tmp_path / "src", "1", [make_layer({"a": b"a" * 5000})])
    imagetool("copy", "-q", f"oci:{tmp_path}/src:1", cs.ref("localhost/a:1"))
    [layer] = cs.layers()
    layer["flags"] = {"incomplete": True}
    (cs.graph / "overlay-layers" / "layers.json").write_text(json.dumps([layer]))
    (cs.graph / "overlay-images" / "images.json").write_text("[]")
    victim = cs.graph / "overlay" / str(layer["id"]) / "diff" / "a"
    victim.write_bytes(b"half")  # what the killed writer got to
    imagetool("copy", "-q", f"oci:{tmp_path}/src:1", cs.ref("localhost/a:1"))
    [again] = cs.layers()
    assert "flags" not in again and victim.read_bytes() == b"a" * 5000
    skopeo("copy", cs.ref("localhost/a:1"), f"oci:{tmp_path}/out:1")
