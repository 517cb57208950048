"""`build -o/--output`: the final stage's root filesystem written out, as BuildKit and buildah mean it.

`type=local,dest=DIR` writes the files into DIR; `type=tar,dest=FILE` writes them as one tar
(`dest=-` to standard output). A bare path is `type=local,dest=PATH`, and a bare `-` is a tar on
standard output (docker's shorthand). Images go elsewhere: `-t` with a transport (`oci-archive:F`),
`--push`, or `push` after the build. With several platforms each one gets a subdirectory (local)
or top-level directory (tar) named os_arch[_variant], as BuildKit lays them out.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imagetool import userns
from imagetool.build.layerwriter import tar_view
from imagetool.build.rootview import RootView
from imagetool.errors import UsageError

_IMAGE_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:", "dir:", "docker:", "local:")


@dataclass(frozen=True)
class RootfsOutput:
    kind: str   # "local" or "tar"
    dest: str   # a directory, a file, or "-" (standard output, tar only)


def parse_output(text: str) -> RootfsOutput:
    """One --output value."""
    if text == "-":
        return RootfsOutput("tar", "-")
    if "=" not in text.split(",", 1)[0]:
        if text.startswith(_IMAGE_TRANSPORTS):
            raise UsageError(f"--output {text}: --output writes the root filesystem (type=local,dest=DIR or "
                             f"type=tar,dest=FILE); to write an image, name it with -t {text} or use --push")
        return RootfsOutput("local", text)
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise UsageError(f"--output {text}: expected type=local|tar,dest=PATH")
        fields[key.strip()] = value.strip()
    kind = fields.pop("type", "")
    dest = fields.pop("dest", "")
    if kind not in ("local", "tar"):
        raise UsageError(f"--output {text}: type {kind or '(none)'} is not supported (local or tar)")
    if not dest:
        raise UsageError(f"--output {text}: no dest=")
    if dest == "-" and kind == "local":
        raise UsageError(f"--output {text}: a local output needs a directory (type=tar,dest=- for standard output)")
    if fields:
        raise UsageError(f"--output {text}: unknown option(s) {', '.join(sorted(fields))}")
    return RootfsOutput(kind, dest)


def platform_dir(platform: str) -> str:
    """linux/arm64/v8 -> linux_arm64_v8, BuildKit's directory name for one platform's files."""
    return platform.replace("/", "_")


def write_rootfs(lowers: list[Path], outputs: list[RootfsOutput], timestamp: int | None,
                 subdir: str | None = None, work: Path | None = None) -> None:
    """Write the merged view of `lowers` (layer directories, top first) to every output; with `subdir`,
    under that name (several platforms). Read in the store's user namespace, as the layers were written."""
    if not outputs:
        return
    view = RootView(lowers)
    with tempfile.TemporaryFile(dir=work) as tar:
        userns.produce(lambda out: tar_view(view, out, timestamp), tar)
        for output in outputs:
            tar.seek(0)
            if output.kind == "local":
                _extract(tar, Path(output.dest) / subdir if subdir else Path(output.dest))
            else:
                _write_tar(tar, output.dest, subdir)


def _extract(tar: BinaryIO, dest: Path) -> None:
    from imagetool.layer.unpack import UnpackOptions, unpack

    dest.mkdir(parents=True, exist_ok=True)
    # the caller's files, as BuildKit's local exporter writes them: owners kept only when root
    unpack(tar, dest, UnpackOptions(whiteouts="keep", devices=None, chown=os.geteuid() == 0))


def _write_tar(tar: BinaryIO, dest: str, subdir: str | None) -> None:
    import shutil

    if subdir:
        tar = _prefixed(tar, subdir)
    if dest == "-":
        out = sys.stdout.buffer
        shutil.copyfileobj(tar, out)
        out.flush()
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{dest}.partial")
    with open(partial, "wb") as f:
        shutil.copyfileobj(tar, f)
    partial.replace(dest)


def _prefixed(tar: BinaryIO, prefix: str) -> BinaryIO:
    """The archive with every member under `prefix/` (a directory entry for it first)."""
    import tarfile

    out = tempfile.TemporaryFile()
    with tarfile.open(fileobj=tar, mode="r|") as src, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:  # type: ignore[call-overload]
        top = tarfile.TarInfo(prefix)
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(top)
        for member in src:
            member.name = f"{prefix}/{member.name}"
            if member.islnk():
                member.linkname = f"{prefix}/{member.linkname}"
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
    out.seek(0)
    return out
