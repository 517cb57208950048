"""Files the user names as outputs: a device or FIFO is written into, never renamed over.

`-o /dev/null` once replaced the host's /dev/null with a regular file. These tests never touch the
real /dev/null: they make a character device (1,3, the null device) and FIFOs in tmp_path.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from imagetool import outputs
from tests.lib.cli import imagetool
from tests.lib.gpg import GPGHome, make_home, remove_home
from tests.lib.images import random_image

NULL = os.makedev(1, 3)


def null_device(tmp_path: Path, name: str = "null") -> Path:
    path = tmp_path / name
    os.mknod(path, 0o666 | stat.S_IFCHR, NULL)
    return path


def assert_null_device(path: Path) -> None:
    st = os.lstat(path)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == NULL, f"{path} is no longer the null device"


class FifoReader:
    """A FIFO in tmp_path and a thread reading it to EOF."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.data: bytes | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def result(self, timeout: float = 30) -> bytes:
        self._thread.join(timeout)
        assert stat.S_ISFIFO(os.lstat(self.path).st_mode), f"{self.path} was replaced"
        assert self.data is not None, "nothing was written into the FIFO"
        return self.data


@pytest.fixture(scope="module")
def gpg_home() -> Iterator[GPGHome]:
    home = make_home()
    yield home
    remove_home(home)


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                           "digest": "sha256:" + "a" * 64, "size": 2}, "layers": []}))
    return path


def test_standalone_sign_writes_into_a_device_and_a_fifo(tmp_path: Path, gpg_home: GPGHome) -> None:
    manifest = _manifest(tmp_path)
    dev = null_device(tmp_path)
    imagetool("standalone-sign", "-o", str(dev), str(manifest), "busybox:1.36", gpg_home.fingerprint,
              env=gpg_home.env())
    assert_null_device(dev)
    fifo = FifoReader(tmp_path / "fifo")
    imagetool("standalone-sign", "-o", str(fifo.path), str(manifest), "busybox:1.36", gpg_home.fingerprint,
              env=gpg_home.env())
    sig = tmp_path / "sig"
    sig.write_bytes(fifo.result())
    out = imagetool("standalone-verify", str(manifest), "busybox:1.36", gpg_home.fingerprint, str(sig),
                    env=gpg_home.env())
    assert "Signature verified" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "manifest.json", "null", "sig"]  # no temp left


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_archives_write_into_a_device_and_a_fifo(transport: str, tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, seed=7)
    out = tmp_path / "out"
    out.mkdir()
    dev = null_device(out)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"{transport}:{dev}")
    assert_null_device(dev)
    fifo = FifoReader(out / "fifo")
    imagetool("copy", "-q", "--digestfile", str(dev), f"oci:{tmp_path}/src:v1", f"{transport}:{fifo.path}")
    assert_null_device(dev)
    saved = tmp_path / "saved.tar"
    saved.write_bytes(fifo.result())
    with tarfile.open(saved) as tar:
        assert "manifest.json" in tar.getnames() or "index.json" in tar.getnames()
    imagetool("copy", "-q", f"{transport}:{saved}", f"oci:{tmp_path}/back:v1")
    assert sorted(p.name for p in out.iterdir()) == ["fifo", "null"]  # no temp files beside them


def test_digestfile_writes_into_a_fifo(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=8)
    fifo = FifoReader(tmp_path / "digest")
    imagetool("copy", "-q", "--digestfile", str(fifo.path), f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1")
    assert fifo.result().decode().startswith("sha256:")


def test_build_iidfile_and_logfile_into_a_device_and_a_fifo(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    dev = null_device(tmp_path)
    fifo = FifoReader(tmp_path / "iid")
    imagetool("build", "-q", "--iidfile", str(fifo.path), "--logfile", str(dev), "-t", "outputs:1", str(ctx))
    assert_null_device(dev)
    assert fifo.result().decode().startswith("sha256:")


# -- the helper itself


def test_regular_files_are_replaced_whole_and_symlinks_kept(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to("target")
    outputs.write_output(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    outputs.write_output(tmp_path / "fresh", b"x", 0o600)
    assert (tmp_path / "fresh").read_bytes() == b"x" and stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "link", "target"]


def test_an_open_descriptor_is_written_into(tmp_path: Path) -> None:
    """/dev/stdout is a link to /proc/self/fd/1: what stdout is open on gets the data, the link stays."""
    sink = tmp_path / "stdout-file"
    fd = os.open(sink, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{fd}")
        assert outputs.writes_in_place(link)
        outputs.write_output(link, b"through the descriptor")
        assert link.is_symlink() and sink.read_bytes() == b"through the descriptor"
    finally:
        os.close(fd)
    assert outputs.writes_in_place("/dev/stdout")
    assert not outputs.writes_in_place(tmp_path / "missing")


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sig"
    target.write_bytes(b"old")
    out = outputs.OutputFile(target)
    with out.open() as f:
        f.write(b"half")
    out.abort()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["sig"]
