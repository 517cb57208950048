"""What a killed writer or a power loss can leave in a layout, and who cleans it up.

Writers hold an flock on their temp files; the next writer (or gc) removes only temp files it
can lock, so a live writer's file is never touched. Every directory that received a rename is
fsynced before index.json names what it holds.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagetool.errors import StoreLocked
from imagetool.store.gc import collect
from imagetool.store.layout import TEMP_PREFIX, LayoutStore
from imagetool.store.tempfiles import GRACE
from tests.lib.cli import imagetool, tool
from tests.lib.images import random_image


def _temps(layout: Path) -> list[Path]:
    return [p for p in layout.rglob(TEMP_PREFIX + "*")]


def _start_slow_copy(src: Path, dst: str) -> subprocess.Popen[bytes]:
    """A copy busy writing one large layer for a few seconds (zstd -19 of incompressible data)."""
    return subprocess.Popen([sys.executable, "-m", "imagetool", "copy", "-q", "--dest-compress-format", "zstd",
                             "--dest-compress-level", "19", f"oci:{src}:v1", dst])


def _wait_for_temp(layout: Path, proc: subprocess.Popen[bytes]) -> Path | None:
    """The big layer's temp file, once the copy has written a MB of it."""
    for _ in range(800):
        for p in _temps(layout):
            try:
                if p.stat().st_size > 1 << 20:
                    return p
            except FileNotFoundError:
                continue
        if proc.poll() is not None:
            return None
        time.sleep(0.025)
    return None


def test_next_copy_removes_what_a_killed_copy_left(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, size=8 << 20, compression=None)
    random_image(tmp_path / "small", "v1", seed=7)
    dst = tmp_path / "dst"
    proc = _start_slow_copy(tmp_path / "src", f"oci:{dst}:big")
    _wait_for_temp(dst, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _temps(dst), "the killed copy left no temp file to clean"
    time.sleep(GRACE + 0.1)
    imagetool("copy", "-q", f"oci:{tmp_path}/small:v1", f"oci:{dst}:small")
    assert _temps(dst) == []
    tool(["umoci", "stat", "--image", f"{dst}:small"])


def test_a_live_writers_temp_file_is_never_removed(tmp_path: Path) -> None:
    """Another copy (which sweeps dead temp files) while a slow one writes: both end well."""
    random_image(tmp_path / "src", "v1", n_layers=1, size=8 << 20, compression=None)
    random_image(tmp_path / "small", "v1", seed=7)
    dst = tmp_path / "dst"
    proc = _start_slow_copy(tmp_path / "src", f"oci:{dst}:big")
    try:
        live = _wait_for_temp(dst, proc)
        assert live is not None
        proc.send_signal(signal.SIGSTOP)  # a stalled writer: its file ages, only its lock protects it
        time.sleep(GRACE + 0.1)
        imagetool("copy", "-q", f"oci:{tmp_path}/small:v1", f"oci:{dst}:small")
        assert live.exists()
        proc.send_signal(signal.SIGCONT)
    finally:
        assert proc.wait(timeout=300) == 0
    for name in ("big", "small"):
        tool(["umoci", "stat", "--image", f"{dst}:{name}"])
    assert _temps(dst) == []


def test_gc_waits_for_a_writer(tmp_path: Path) -> None:
    """The use lock still excludes gc from a running writer, now without lock files in the layout."""
    random_image(tmp_path / "s", "v1")
    store = LayoutStore.open(tmp_path / "s")
    held = store.hold_shared()
    try:
        with pytest.raises(StoreLocked):
            with store.exclusive(timeout=0.2):
                pass
        store.update_index(lambda entries: entries)  # a writer still updates the index
    finally:
        held.release()
    collect(store)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["blobs", "index.json", "oci-layout"]


_CALL = re.compile(r"^(?:\d+\s+)?(\w+)\((.*?)(?:\)\s+=\s+(-?\d+).*| <unfinished \.\.\.>)$")


def _trace(argv: list[str], out: Path) -> list[tuple[str, str]]:
    """(call, args) of every successful fsync and rename, in order, fds shown as their paths (-y)."""
    tool(["strace", "-f", "-y", "-qq", "-o", str(out), "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
          *argv])
    calls = []
    for line in out.read_text().splitlines():
        m = _CALL.match(line.strip())
        if m and m.group(3) in ("0", None):  # a call left unfinished by another thread's completes later
            calls.append((m.group(1), m.group(2)))
    return calls


def _renamed_to(args: str) -> str:
    return re.findall(r'"([^"]*)"', args)[-1]


def _traced_copy(tmp_path: Path, dest: str, n_layers: int) -> tuple[list[tuple[str, str]], Path, str, int]:
    """A copy into an oci: layout or the local store under strace: its calls, the layout, its blob
    directory, and the index of the call that renames index.json into place."""
    random_image(tmp_path / "src", "v1", n_layers=n_layers)
    layout = tmp_path / "dst"
    target = f"oci:{layout}:v1" if dest == "oci" else "localhost/app:v1"
    calls = _trace([sys.executable, "-m", "imagetool", "--store", str(layout), "copy", "-q",
                    f"oci:{tmp_path}/src:v1", target], tmp_path / "trace")
    index_at = max(i for i, (c, a) in enumerate(calls) if c.startswith("rename")
                   and _renamed_to(a) == str(layout / "index.json"))
    return calls, layout, str(layout / "blobs" / "sha256"), index_at


@pytest.mark.parametrize("dest", ["oci", "local"])
def test_directories_are_fsynced_before_index_json_names_their_entries(tmp_path: Path, dest: str) -> None:
    calls, layout, blobs, index_at = _traced_copy(tmp_path, dest, n_layers=2)
    blob_renames = [i for i, (c, a) in enumerate(calls) if c.startswith("rename") and _renamed_to(a).startswith(blobs)]
    assert blob_renames and max(blob_renames) < index_at
    fsynced_blobs = [i for i, (c, a) in enumerate(calls) if c == "fsync" and a.endswith(f"<{blobs}>")]
    assert any(max(blob_renames) < i < index_at for i in fsynced_blobs), \
        "blobs/sha256 is not fsynced between the last blob rename and the index.json rename"
    assert any(i > index_at and c == "fsync" and a.endswith(f"<{layout}>") for i, (c, a) in enumerate(calls)), \
        "the layout directory is not fsynced after index.json is replaced"


@pytest.mark.parametrize("dest", ["oci", "local"])
def test_blobs_are_fsynced_together_at_commit_not_one_by_one(tmp_path: Path, dest: str) -> None:
    """No blob is fsynced while it is written; every blob index.json names is fsynced before it is replaced."""
    calls, layout, blobs, index_at = _traced_copy(tmp_path, dest, n_layers=3)
    renamed = {_renamed_to(a) for c, a in calls if c.startswith("rename") and _renamed_to(a).startswith(blobs + "/")}
    assert len(renamed) >= 5  # three layers, the config, the manifest
    temp_syncs = [a for c, a in calls if c in ("fsync", "fdatasync") and f"{blobs}/{TEMP_PREFIX}" in a]
    assert not temp_syncs, f"blobs fsynced one by one while written: {temp_syncs}"
    fsynced = {re.search(r"<([^>]*)>", a).group(1) for c, a in calls[:index_at]  # type: ignore[union-attr]
               if c == "fsync" and "<" in a}
    assert renamed <= fsynced, f"named by index.json but never made durable: {renamed - fsynced}"


def test_blobs_written_again_are_made_durable_even_when_index_json_stays(tmp_path: Path) -> None:
    """A second copy that recompresses writes its layers again (new files under the same names) and
    leaves index.json as it was: those files are fsynced all the same."""
    random_image(tmp_path / "src", "v1", n_layers=2, compression=None)
    layout = tmp_path / "dst"
    argv = [sys.executable, "-m", "imagetool", "copy", "-q", "--dest-compress-format", "zstd",
            f"oci:{tmp_path}/src:v1", f"oci:{layout}:v1"]
    _trace(argv, tmp_path / "trace1")
    calls = _trace(argv, tmp_path / "trace2")
    blobs = str(layout / "blobs" / "sha256")
    renamed = {_renamed_to(a) for c, a in calls if c.startswith("rename") and _renamed_to(a).startswith(blobs + "/")}
    assert len(renamed) >= 2  # the recompressed layers at least
    assert not any(c.startswith("rename") and _renamed_to(a) == str(layout / "index.json") for c, a in calls)
    fsynced = {re.search(r"<([^>]*)>", a).group(1) for c, a in calls  # type: ignore[union-attr]
               if c == "fsync" and "<" in a}
    assert renamed <= fsynced, f"written again but never made durable: {renamed - fsynced}"
    assert any(c == "fsync" and a.endswith(f"<{blobs}>") for c, a in calls)
