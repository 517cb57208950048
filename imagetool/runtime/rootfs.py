"""Building a container's root: the mounts of the spec, /dev, masked paths, pivot_root.

Runs in the container's PID 1 before it drops privileges. Paths from the image are
joined with secure_join, so no image symlink can point a mount at the host. Standard
library plus linux/paths only (the helper's start-up).
"""

from __future__ import annotations

import os

from imagetool.runtime import linux
from imagetool.runtime.paths import secure_join

#: mount(2) reads its options as one page, NUL included
MAX_MOUNT_DATA = 4095
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
DEV_LINKS = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")]


def parse_options(options: list[str]) -> tuple[int, int, list[str]]:
    """Mount options -> (flags, propagation flags, data items), as runc splits them."""
    flags, propagation, data = 0, 0, []
    for opt in options:
        if opt in linux.MOUNT_FLAGS:
            clear, flag = linux.MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in linux.PROPAGATION_FLAGS:
            propagation |= linux.PROPAGATION_FLAGS[opt]
        else:
            data.append(opt)
    return flags, propagation, data


def make_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def overlay_data(lowers: list[str], upper: str | None, work: str | None, volatile: bool = False) -> str:
    """Overlay options with lowerdirs relative to their common parent (the caller chdirs there)."""
    def esc(p: str) -> str:
        return p.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")

    data = "lowerdir=" + ":".join(esc(p) for p in lowers)
    if upper:
        data += f",upperdir={esc(upper)},workdir={esc(work or '')}"
        if volatile:  # no syncs of the upper filesystem, above all none when the namespace goes away
            data += ",volatile"
    return data


def mount_overlay(target: str, lowers: list[str], upper: str | None, work: str | None, flags: int = 0,
                  volatile: bool = False) -> None:
    if len(lowers) == 1 and not upper:
        linux.mount(lowers[0], target, None, linux.MS_BIND | linux.MS_REC)
        if flags & linux.MS_RDONLY:
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
        return
    base = os.path.commonpath(lowers) if len(lowers) > 1 else os.path.dirname(lowers[0])
    rel = [os.path.relpath(p, base) for p in lowers]
    # rootless: trusted.* xattrs are out of reach, so overlay keeps opaque markers and redirects in user.*
    userxattr = ["userxattr"] if in_user_namespace() else []
    data = ",".join([overlay_data(rel, upper, work, volatile), *userxattr])
    if len(data) >= MAX_MOUNT_DATA:  # too many layers for one page of options: one fsconfig call each
        linux.mount_overlay_fs(target, lowers, upper, work, (["volatile"] if volatile and upper else []) + userxattr)
        return
    here = os.getcwd()
    os.chdir(base)
    try:
        linux.mount("overlay", target, "overlay", flags, data)
    finally:
        os.chdir(here)


def in_user_namespace() -> bool:
    """Whether this process is in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def mount_entry(rootfs: str, m: dict) -> None:
    dest = secure_join(rootfs, m["destination"])
    mtype = m.get("type") or ""
    flags, propagation, data = parse_options(m.get("options") or [])
    if mtype == "bind" or flags & linux.MS_BIND:
        source = m["source"]
        make_target(dest, os.path.isdir(source))
        linux.mount(source, dest, None, linux.MS_BIND | (flags & linux.MS_REC))
        extra = flags & ~(linux.MS_BIND | linux.MS_REC)
        if extra:
            linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | extra | locked_flags(dest))
    elif mtype == "overlay":
        opts = dict(item.partition("=")[::2] for item in data)
        make_target(dest, True)
        lowers = [p for p in opts.get("lowerdir", "").split(":") if p]
        mount_overlay(dest, lowers, opts.get("upperdir"), opts.get("workdir"), flags)
    else:
        make_target(dest, True)
        try:
            linux.mount(m.get("source") or mtype, dest, mtype, flags, ",".join(data) or None)
        except OSError as err:
            if mtype == "mqueue":  # not every kernel lets a namespace mount it; it is optional
                return
            if mtype == "devpts" and err.errno == 22 and any(d.startswith("gid=") for d in data):
                # in a user namespace the tty group may not be mapped: devpts as runc's rootless spec has it
                data = [d for d in data if not d.startswith("gid=")]
                linux.mount(m.get("source") or mtype, dest, mtype, flags, ",".join(data) or None)
            else:
                raise
        if mtype == "tmpfs" and m["destination"] == "/dev":
            make_devices(dest)
    if propagation:
        linux.mount(None, dest, None, propagation)


def locked_flags(path: str) -> int:
    """The nosuid/nodev/noexec flags a remount must keep (st_flag bits equal the MS_ ones)."""
    return os.statvfs(path).f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def make_devices(dev: str) -> None:
    old = os.umask(0)
    try:
        for name, major, minor in DEVICES:
            path = os.path.join(dev, name)
            try:
                os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
            except PermissionError:  # in a user namespace: bind the host's node instead
                make_target(path, False)
                linux.mount(f"/dev/{name}", path, None, linux.MS_BIND)
        for name, target in DEV_LINKS:
            os.symlink(target, os.path.join(dev, name))
    finally:
        os.umask(old)


def mask_paths(masked: list[str], readonly: list[str]) -> None:
    for path in masked:
        if os.path.isdir(path) and not os.path.islink(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, None)
        elif os.path.exists(path):
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    for path in readonly:
        if not os.path.exists(path):
            continue
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC
                    | locked_flags(path))


def pivot(rootfs: str) -> None:
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
