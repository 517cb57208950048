"""Directory trees with every kind of member a layer carries, their GNU tar archives, and tree snapshots.

make_tree() builds a tree on disk (files of varied sizes and modes, setuid, hardlinks,
symlinks, empty dirs, xattrs, fixed mtimes, a fifo, devices when root); gnu_tar() archives
it with GNU tar (PAX format, xattrs); describe() lists a tree's observable state so two
unpacks can be compared entry by entry.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
from pathlib import Path

MTIME = 1_600_000_000


def make_tree(root: Path, files: int = 200, seed: int = 7, devices: bool | None = None) -> None:
    """A varied tree under `root` (created); `files` regular files spread over directories."""
    rng = random.Random(seed)
    devices = os.geteuid() == 0 if devices is None else devices
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        d = root / f"d{n // 100}" / f"s{n % 7}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.choice((0, 1, 100, 511, 512, 513, 4096, 70_000)) if n % 50 else 300_000
        p = d / f"f{n}"
        p.write_bytes(rng.randbytes(size))
        os.chmod(p, rng.choice((0o644, 0o600, 0o755, 0o444, 0o640)))
        os.utime(p, (MTIME + n, MTIME + n))
    special = root / "special"
    special.mkdir()
    (special / "setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(special / "setuid", 0o4755)
    (special / "setgid").write_bytes(b"x")
    os.chmod(special / "setgid", 0o2711)
    (special / "sticky").mkdir()
    os.chmod(special / "sticky", 0o1777)
    (special / "readonly-dir").mkdir()
    (special / "readonly-dir" / "inside").write_bytes(b"in a read-only directory")
    os.chmod(special / "readonly-dir", 0o555)
    (special / "hard-a").write_bytes(b"shared inode")
    os.link(special / "hard-a", special / "hard-b")
    os.link(special / "hard-a", root / "d0" / "hard-c")
    os.symlink("hard-a", special / "rel-link")
    os.symlink("/etc/passwd", special / "abs-link")
    os.symlink("../d0", special / "dir-link")
    os.symlink("missing", special / "dangling")
    (special / "empty-dir").mkdir()
    (special / ("x" * 120)).write_bytes(b"long name")
    deep = special / "/".join(["deep" + str(i) for i in range(30)])
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(b"deep leaf")
    (special / "ünïcödé").write_bytes(b"utf-8 name")
    (special / "xattr").write_bytes(b"with xattrs")
    os.setxattr(special / "xattr", "user.comment", b"hello")
    os.setxattr(special / "xattr", "user.binary", bytes(range(1, 40)))
    os.mkfifo(special / "fifo")
    if devices:
        os.mknod(special / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(special / "loop", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
        os.chown(special / "setgid", 1234, 5678)
        os.chmod(special / "setgid", 0o2711)
        os.lchown(special / "rel-link", 42, 43)
    for p in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(p, (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))


def gnu_tar(root: Path, out: Path, *extra: str) -> Path:
    """`tar -c` of the contents of `root` (names relative, PAX, xattrs kept, sorted)."""
    subprocess.run(["tar", "--format=pax", "--xattrs", "--xattrs-include=*", "--sort=name", "--numeric-owner",
                    *extra, "-C", str(root), "-cf", str(out), "."], check=True)
    return out


def gnu_untar(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--same-owner", "--numeric-owner", "-p",
                    "-C", str(target), "-xf", str(archive)], check=True)


def describe(root: Path, times: bool = True) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size/target/rdev, content digest, xattrs, mtime, hardlink group)."""
    import hashlib

    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(fmt):
                with open(p, "rb") as f:
                    what: object = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(fmt):
                what = os.readlink(p)
            elif stat.S_ISCHR(fmt) or stat.S_ISBLK(fmt):
                what = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = None
            try:
                xattrs = tuple(sorted((k, os.getxattr(p, k, follow_symlinks=False))
                                      for k in os.listxattr(p, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            group = None
            if stat.S_ISREG(fmt) and st.st_nlink > 1:
                group = inodes.setdefault((st.st_dev, st.st_ino), rel)
            out[rel] = (fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what, xattrs,
                        st.st_mtime_ns if times else None, group)
    return out
