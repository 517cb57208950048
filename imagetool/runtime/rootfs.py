"""Building a container's root: the mounts of the spec, /dev, masked paths, pivot_root.

Runs in the container's PID 1 before it drops privileges. Paths from the image are
joined with secure_join, so no image symlink can point a mount at the host. Standard
library plus linux/paths only (the helper's start-up).

Device nodes: every mount made here is nodev (binds recursively), except devpts and the
binds of the host's standard nodes in /dev, so a node the container makes (it keeps
CAP_MKNOD, as with Docker) opens nothing, with or without a devices cgroup.
"""

from __future__ import annotations

import _thread
import os
import stat

from imagetool.runtime import linux
from imagetool.runtime.paths import secure_join

#: mount(2) reads its options as one page, NUL included
MAX_MOUNT_DATA = 4095
#: held while a mount runs with the working directory changed for it
_CWD = _thread.allocate_lock()
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
#: the flags mount_setattr(2) and a bind remount can set on a whole tree
CONFINING = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
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
        elif opt not in linux.RECURSIVE_FLAGS:
            data.append(opt)
    return flags, propagation, data


def recursive_flags(options: list[str]) -> tuple[int, int]:
    """The recursive options ("rro", "rnodev"...) -> (flags to set, flags to clear) on a whole mount tree."""
    set_flags, clear_flags = 0, 0
    for opt in options:
        if opt in linux.RECURSIVE_FLAGS:
            clear, flag = linux.RECURSIVE_FLAGS[opt]
            set_flags, clear_flags = (set_flags & ~flag, clear_flags | flag) if clear else \
                (set_flags | flag, clear_flags & ~flag)
    return set_flags, clear_flags


def standard_device(path: str) -> bool:
    """Whether `path` is one of the device nodes every container has (a bind of it keeps working)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) in \
        {(major, minor) for _name, major, minor in DEVICES}


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
        if flags & CONFINING:
            linux.set_mount_flags(target, flags & CONFINING)
        return
    # rootless: trusted.* xattrs are out of reach, so overlay keeps opaque markers and redirects in user.*
    userxattr = ["userxattr"] if in_user_namespace() else []
    data = ",".join([overlay_data(lowers, upper, work, volatile), *userxattr])
    if len(data) < MAX_MOUNT_DATA:
        linux.mount("overlay", target, "overlay", flags, data)
        return
    # more layers than a page of absolute paths holds: relative to their common parent, made the working directory
    base = os.path.commonpath(lowers) if len(lowers) > 1 else os.path.dirname(lowers[0])
    data = ",".join([overlay_data([os.path.relpath(p, base) for p in lowers], upper, work, volatile), *userxattr])
    if len(data) >= MAX_MOUNT_DATA:  # too many even so: one fsconfig call each
        linux.mount_overlay_fs(target, lowers, upper, work, (["volatile"] if volatile and upper else []) + userxattr,
                               flags & CONFINING)
        return
    with _CWD:  # the working directory is the process's: threads mounting at once (runc steps of a
        here = os.getcwd()  # multi-platform build) would resolve their lowerdirs in each other's
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
        # "ro" is the top mount's alone (as runc reads it), "rro" and kin the whole tree's; nodev always
        set_flags, clear_flags = recursive_flags(m.get("options") or [])
        if not standard_device(source):
            set_flags, clear_flags = set_flags | linux.MS_NODEV, clear_flags & ~linux.MS_NODEV
        if set_flags or clear_flags:
            linux.set_mount_flags(dest, set_flags, clear_flags)
    elif mtype == "cgroup":
        make_target(dest, True)
        mount_cgroups(dest, flags | linux.MS_NODEV)
    elif mtype == "overlay":
        opts = dict(item.partition("=")[::2] for item in data)
        make_target(dest, True)
        lowers = [p for p in opts.get("lowerdir", "").split(":") if p]
        mount_overlay(dest, lowers, opts.get("upperdir"), opts.get("workdir"), flags | linux.MS_NODEV)
    else:
        make_target(dest, True)
        if mtype != "devpts":  # no node can be made in a devpts; its ptys must open
            flags |= linux.MS_NODEV
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
    """The standard nodes in the (nodev) /dev tmpfs: binds of the host's, each its own mount without nodev."""
    for name, major, minor in DEVICES:
        source = f"/dev/{name}"
        st = os.stat(source)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(major, minor):
            raise OSError(19, f"{source} is not the standard device {major}:{minor}")
        path = os.path.join(dev, name)
        make_target(path, False)
        linux.mount(source, path, None, linux.MS_BIND)
    for name, target in DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))


def cgroup_hierarchies() -> list[tuple[str, str, str]] | None:
    """The host's cgroup mounts under /sys/fs/cgroup as (name, fstype, options); None when it is cgroup2 alone.

    An empty list: the host has none mounted there, and the container gets none either.
    """
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, fstype, options = fields[4], fields[sep + 1], fields[sep + 3].split(",")
            if point == "/sys/fs/cgroup" and fstype == "cgroup2":
                return None
            if os.path.dirname(point) == "/sys/fs/cgroup" and fstype in ("cgroup", "cgroup2"):
                data = [o for o in options if o not in ("rw", "ro") and not o.startswith("release_agent=")]
                found.append((os.path.basename(point), fstype, ",".join(data)))
    return found


def mount_cgroups(dest: str, flags: int) -> None:
    """The container's own cgroup tree at `dest`, as runc mounts it in a cgroup namespace.

    cgroup2 alone: one mount. v1 or hybrid: a tmpfs with one mount per hierarchy the host has, under
    the host's names (and links for co-mounted controllers), read-only when `flags` say so.
    """
    hierarchies = cgroup_hierarchies()
    if hierarchies is None:
        linux.mount("cgroup2", dest, "cgroup2", flags, None)
        return
    if not hierarchies:
        return
    linux.mount("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
    for name, fstype, data in hierarchies:
        path = os.path.join(dest, name)
        os.mkdir(path, 0o555)
        linux.mount(fstype, path, fstype, flags, data or None)
        for part in name.split(",") if "," in name else []:
            os.symlink(name, os.path.join(dest, part))
    if flags & linux.MS_RDONLY:
        linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | flags & CONFINING)


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
