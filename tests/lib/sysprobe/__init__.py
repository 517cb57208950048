"""sysprobe: a static program that makes named system calls and prints what each returned (ok or an errno name).

Busybox has no applet for keyctl, perf_event_open, userfaultfd, io_uring_setup or clone3, so the
seccomp tests bind this program into their containers. It is compiled from sysprobe.c with
`gcc -static` (gcc and libc6-dev are in scripts/install-deps) once per session, into a directory
every user can read, so rootless containers can run it too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SOURCE = Path(__file__).with_name("sysprobe.c")
#: where the directory holding the program is bound inside a container
MOUNTED = "/sysprobe"


def build(directory: Path) -> Path:
    """Compile sysprobe into `directory` (readable and executable by everyone); returns the program's path."""
    target = directory / "sysprobe"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(target), str(SOURCE)], check=True, capture_output=True)
    directory.chmod(0o755)
    target.chmod(0o755)
    return target


@contextmanager
def compiled() -> Iterator[Path]:
    """A directory with the sysprobe program, for the length of the block; bind it with volume(DIR)."""
    base = Path(tempfile.mkdtemp(prefix="imagetool-sysprobe-", dir="/tmp"))
    try:
        build(base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def volume(directory: Path) -> tuple[str, str]:
    return ("-v", f"{directory}:{MOUNTED}:ro")


def command(*probes: str) -> str:
    return f"{MOUNTED}/sysprobe {' '.join(probes)}"
