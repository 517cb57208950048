"""Test images made on the spot: random layers, a busybox base, written into OCI layouts."""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from imagetool import gojson, media
from imagetool.descriptor import ANNOTATION_REF_NAME, Descriptor, Platform
from imagetool.digest import Digest
from imagetool.manifest import Index, Manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore

BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = ["sh", "ls", "cat", "echo", "true", "false", "id", "hostname", "ps", "sleep", "mkdir",
                   "touch", "rm", "grep", "wc", "env", "pwd", "test", "head", "stat", "readlink", "ip",
                   "mount", "chmod", "chown", "ln", "cp", "mv", "find", "seq", "sha256sum", "uname", "kill",
                   "dd", "tr", "sed", "awk", "printf", "whoami", "date", "tee", "xargs", "[", "which",
                   "dmesg", "nproc", "sort"]


@dataclass
class Layer:
    blob: bytes
    diff_id: Digest
    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.of(self.blob)


def tar_bytes(files: Mapping[str, bytes | str | None], mtime: int = 0) -> bytes:
    """A tar of `files`: bytes = regular file, str starting with '->' = symlink, None = directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(content, str) and content.startswith("->"):
                info.type = tarfile.SYMTYPE
                info.linkname = content[2:]
                info.mode = 0o777
                tar.addfile(info)
            else:
                data = content.encode() if isinstance(content, str) else content
                info.size = len(data)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_layer(files: Mapping[str, bytes | str | None], compression: str | None = "gzip",
               oci: bool = True) -> Layer:
    raw = tar_bytes(files)
    if compression == "gzip":
        blob = gzip.compress(raw, mtime=0)
    elif compression == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor().compress(raw)
    else:
        blob = raw
    return Layer(blob, Digest.of(raw), media.layer_type(oci, compression))


def random_layer(size: int, seed: int, compression: str | None = "gzip", oci: bool = True) -> Layer:
    rng = random.Random(seed)
    return make_layer({f"data/file-{seed}.bin": rng.randbytes(size)}, compression, oci)


def write_image(layout: str | Path, name: str | None, layers: list[Layer], *, oci: bool = True,
                config: Mapping[str, object] | None = None, architecture: str = "amd64",
                os_name: str = "linux", create: bool = True) -> Descriptor:
    """Write an image into an OCI layout and name it; returns its index.json descriptor."""
    store = LayoutStore.create(layout) if create else LayoutStore.open(layout)
    cfg = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": os_name,
        "config": dict(config or {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                                  "Cmd": ["/bin/sh"], "Labels": {"test": "yes"}}),
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "tests"} for _ in layers],
    }
    cfg_raw = gojson.dumps(cfg)
    cfg_digest = store.put_bytes(cfg_raw)
    layer_descs = []
    for layer in layers:
        store.put_bytes(layer.blob)
        mt = layer.media_type if oci else media.convert_type(layer.media_type, False)
        layer_descs.append(Descriptor(mt, layer.digest, len(layer.blob)))
    manifest = Manifest.build(media.OCI_MANIFEST if oci else media.DOCKER_MANIFEST,
                              Descriptor(media.OCI_CONFIG if oci else media.DOCKER_CONFIG, cfg_digest,
                                         len(cfg_raw)), layer_descs)
    digest = store.put_bytes(manifest.raw)
    desc = Descriptor(manifest.media_type, digest, len(manifest.raw))
    refs.set_name(store, name, desc)
    return refs.named(desc, name) if name else desc


def random_image(layout: str | Path, name: str | None = "latest", n_layers: int = 3, size: int = 4096,
                 seed: int = 1, compression: str | None = "gzip", oci: bool = True) -> Descriptor:
    layers = [random_layer(size, seed * 100 + i, compression, oci) for i in range(n_layers)]
    return write_image(layout, name, layers, oci=oci)


def busybox_files() -> dict[str, bytes | str | None]:
    """A minimal root filesystem around Debian's static busybox."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} missing: install Debian's busybox-static (the test command does)")
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    files: dict[str, bytes | str | None] = {
        "bin": None, "etc": None, "tmp": None, "root": None, "proc": None, "sys": None, "dev": None,
        "bin/busybox": busybox,
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    for applet in BUSYBOX_APPLETS:
        files[f"bin/{applet}"] = "->busybox"
    return files


def busybox_image(layout: str | Path, name: str | None = "latest", oci: bool = True) -> Descriptor:
    return write_image(layout, name, [make_layer(busybox_files(), "gzip", oci)], oci=oci,
                       config={"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]})


def two_platform_index(path: str | Path, name: str = "multi", seed: int = 1) -> Index:
    """An OCI index of a linux/amd64 and a linux/arm64/v8 image, named `name` in the layout."""
    a = random_image(path, None, seed=seed, n_layers=1)
    b = random_image(path, None, seed=seed + 1, n_layers=1)
    store = LayoutStore.open(path)
    entries = [a.with_(platform=Platform("amd64", "linux"), annotations={}),
               b.with_(platform=Platform("arm64", "linux", "v8"), annotations={})]
    index = Index.build(media.OCI_INDEX, entries)
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), name)])
    return index


def copy_layout(src: str | Path, dst: str | Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


__all__ = ["ANNOTATION_REF_NAME", "Layer", "busybox_image", "make_layer", "random_image", "two_platform_index",
           "write_image"]
