"""What a push to a registry prints: bars on a terminal, plain lines otherwise, nothing with --quiet."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lib.cli import imagetool
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _on_a_terminal(*args: str) -> str:
    """Run imagetool with its stdout on a pseudo-terminal; return what the terminal received."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "imagetool", *args], stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode(errors="replace")


def test_plain_lines_when_not_a_terminal_and_nothing_when_quiet(plain_registry: Registry, tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, size=50_000, seed=77)
    out = imagetool("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
                    plain_registry.ref("progress/plain:v1")).stdout
    lines = out.splitlines()
    assert sum(1 for line in lines if line.startswith("Copying blob ") and line.endswith(" done")) == 2
    assert any(line.startswith("Copying config ") for line in lines)
    assert "Writing manifest to image destination" in lines
    assert "\x1b" not in out and "[" not in out  # no cursor movement, no bars
    quiet = imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
                      plain_registry.ref("progress/quiet:v1"))
    assert quiet.stdout == ""


def test_bars_per_blob_on_a_terminal(plain_registry: Registry, tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, size=3_000_000, seed=78, compression=None)
    out = _on_a_terminal("copy", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
                         plain_registry.ref("progress/tty:v1"))
    bars = [line for line in out.replace("\x1b[1A\x1b[2K", "\n").splitlines() if "] " in line and " / " in line]
    assert bars, out
    assert all(line.startswith(("Copying ", "Total ")) for line in bars)
    assert "\x1b[1A" in out  # bars are redrawn in place
    assert out.count(" done") == 3  # each blob still ends with its own line


def test_a_total_bar_under_several_blobs() -> None:
    import io

    from imagetool.copy.progress import Progress
    from imagetool.descriptor import Descriptor
    from imagetool.digest import Digest

    out = io.StringIO()
    progress = Progress(out, tty=True)
    a, b = (progress.blob("blob", Descriptor("x", Digest.of(bytes([n])), 1000)) for n in (1, 2))
    a.advance(500)
    progress._last = 0.0  # the redraw throttle
    b.advance(250)
    assert out.getvalue().splitlines()[-1] == f"Total [{'=' * 11:<30}] 750B / 2.0KiB"
    b.finish("skipped: already exists")  # a skipped blob counts as through
    assert progress.done == 500 + 1000
