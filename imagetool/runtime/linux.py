"""The Linux system calls the helper needs and Python's os module lacks, through ctypes.

Kept to the standard library so the helper starts fast; every call raises OSError
with the C errno on failure, like the os module does.
"""

from __future__ import annotations

import ctypes
import os
import sys

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000

NAMESPACE_FLAGS = {"mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "user": CLONE_NEWUSER,
                   "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

#: mount option name -> (clear the flag instead of setting it, flag), as runc reads them
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY), "nosuid": (False, MS_NOSUID), "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV), "dev": (True, MS_NODEV), "noexec": (False, MS_NOEXEC), "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS), "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT), "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME), "noatime": (False, MS_NOATIME), "diratime": (True, MS_NODIRATIME),
    "nodiratime": (False, MS_NODIRATIME), "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
}
#: recursive mount options (runc's "rro" and kin) -> (clear the attribute instead of setting it, MOUNT_ATTR_*);
#: the four attributes share their bit values with MS_RDONLY, MS_NOSUID, MS_NODEV and MS_NOEXEC
RECURSIVE_FLAGS: dict[str, tuple[bool, int]] = {
    "rro": (False, MS_RDONLY), "rrw": (True, MS_RDONLY), "rnosuid": (False, MS_NOSUID), "rsuid": (True, MS_NOSUID),
    "rnodev": (False, MS_NODEV), "rdev": (True, MS_NODEV), "rnoexec": (False, MS_NOEXEC), "rexec": (True, MS_NOEXEC),
}
PROPAGATION_FLAGS = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
                     "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
                     "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC}

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1

SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


def _check(result: int) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)))


def pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    _check(_libc.syscall(ctypes.c_long(number), _b(new_root), _b(put_old)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def load_seccomp(program: bytes, flags: int = 0) -> None:
    """Install a classic BPF seccomp filter (sock_filter array) on this thread; exec keeps it."""
    prog = _SockFprog(len(program) // 8, program)
    if not flags:
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
        return
    number = SYS_SECCOMP.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"seccomp: unknown syscall number on {os.uname().machine}")
    _check(_libc.syscall(ctypes.c_long(number), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                         ctypes.byref(prog)))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def cap_bits(names: list[str]) -> int:
    """A bit mask of capability names (unknown names are an error: a typo must not widen or narrow silently)."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data))


def drop_bounding(keep: int) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError as err:
                if err.errno != 22:  # EINVAL: a capability this kernel does not know
                    raise


def set_ambient(caps: int) -> None:
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        return
    for cap in range(last_cap() + 1):
        if caps & (1 << cap):
            prctl(PR_CAP_AMBIENT, 2, cap)  # PR_CAP_AMBIENT_RAISE


def set_loopback_up() -> None:
    """Bring `lo` up in a fresh network namespace, as container engines do (raw ioctls: no socket module)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    fd = _check(_libc.socket(2, 2 | 0o2000000, 0))  # AF_INET, SOCK_DGRAM | SOCK_CLOEXEC
    try:
        req = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: 16-byte name, then a union
        _check(_libc.ioctl(fd, ctypes.c_ulong(siocgifflags), req))
        flags = int.from_bytes(req.raw[16:18], sys.byteorder) | iff_up
        ctypes.memmove(ctypes.addressof(req) + 16, flags.to_bytes(2, sys.byteorder), 2)
        _check(_libc.ioctl(fd, ctypes.c_ulong(siocsifflags), req))
    finally:
        os.close(fd)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))))


_ENOSYS = 38
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "ppc64le": 271, "s390x": 280, "riscv64": 219}
_KEYCTL_JOIN_SESSION_KEYRING, _KEYCTL_SETPERM, _KEYCTL_DESCRIBE = 1, 5, 6
_KEY_USR_SEARCH = 0x00080000


def _keyctl(*args: object) -> int:
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        raise OSError(_ENOSYS, f"keyctl: unknown syscall number on {os.uname().machine}")
    return _check(_libc.syscall(ctypes.c_long(number), *args))


def join_session_keyring(name: str) -> None:
    """Give this process (and what it execs) a fresh session keyring named `name`, as runc does per container.

    Otherwise the container would share the caller's session keyring and every key in it.
    A kernel without keys (ENOSYS) has nothing to share.
    """
    try:
        serial = _keyctl(ctypes.c_int(_KEYCTL_JOIN_SESSION_KEYRING), os.fsencode(name))
    except OSError as err:
        if err.errno == _ENOSYS:
            return
        raise OSError(err.errno, f"joining a session keyring: {err.strerror}") from err
    # searchable by its owner after the ids change, as runc makes it: "type;uid;gid;perm;description"
    buf = ctypes.create_string_buffer(256)
    _keyctl(ctypes.c_int(_KEYCTL_DESCRIBE), ctypes.c_int(serial), buf, ctypes.c_size_t(len(buf)))
    perm = int(buf.value.split(b";")[3], 16)
    _keyctl(ctypes.c_int(_KEYCTL_SETPERM), ctypes.c_int(serial), ctypes.c_uint(perm | _KEY_USR_SEARCH))


_SYS_MOUNT_SETATTR = 442  # one numbering on every arch, as for the calls below
_AT_RECURSIVE = 0x8000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def set_mount_flags(path: str, set_flags: int, clear_flags: int = 0) -> None:
    """Set (and clear) ro/nosuid/nodev/noexec on the mount at `path` and on every mount below it.

    mount_setattr(2) with AT_RECURSIVE where the kernel has it (5.12+), else a remount of
    each mount from /proc/self/mountinfo, keeping the flags a remount must not drop.
    """
    attr = _MountAttr(set_flags, clear_flags, 0, 0)
    result = _libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD), _b(path),
                           ctypes.c_uint(_AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if result == 0:
        return
    err = ctypes.get_errno()
    if err != _ENOSYS:
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)}")
    for target in submounts(path):
        kept = os.statvfs(target).f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount(None, target, None, MS_BIND | MS_REMOUNT | ((kept | set_flags) & ~clear_flags))


def submounts(path: str) -> list[str]:
    """The mountpoints at or below `path`, parents first, from /proc/self/mountinfo."""
    import re

    def unescape(field: str) -> str:
        return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)

    top = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = unescape(line.split()[4])
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return found


_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOVE_MOUNT = 430, 431, 432, 429  # one numbering on every arch
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 0, 1, 6
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100


def _fsconfig(fd: int, cmd: int, key: str | None, value: str | None = None) -> None:
    _check(_libc.syscall(ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fd), ctypes.c_uint(cmd), _b(key), _b(value),
                         ctypes.c_int(0)))


def mount_overlay_fs(target: str, lowers: list[str], upper: str | None, work: str | None,
                     flags: list[str] = (), attrs: int = 0) -> None:  # type: ignore[assignment]
    """Overlay through the new mount API, one `lowerdir+` per layer: no 4 KiB limit on the option string.

    mount(2) takes all options as one page, which a few dozen layer paths fill; fsconfig
    takes them one by one (Linux 6.8+). `attrs`: MOUNT_ATTR_ bits (MS_NODEV and kin share them).
    """
    fs = _check(_libc.syscall(ctypes.c_long(_SYS_FSOPEN), b"overlay", ctypes.c_uint(1)))
    try:
        for lower in lowers:
            _fsconfig(fs, _FSCONFIG_SET_STRING, "lowerdir+", lower)
        if upper:
            _fsconfig(fs, _FSCONFIG_SET_STRING, "upperdir", upper)
            _fsconfig(fs, _FSCONFIG_SET_STRING, "workdir", work)
        for flag in flags:
            _fsconfig(fs, _FSCONFIG_SET_FLAG, flag)
        _fsconfig(fs, _FSCONFIG_CMD_CREATE, None)
        mnt = _check(_libc.syscall(ctypes.c_long(_SYS_FSMOUNT), ctypes.c_int(fs), ctypes.c_uint(1),
                                   ctypes.c_uint(attrs)))
        try:
            _check(_libc.syscall(ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(mnt), b"", ctypes.c_int(_AT_FDCWD),
                                 _b(target), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)))
        finally:
            os.close(mnt)
    except OSError as err:
        raise OSError(err.errno, f"mount overlay of {len(lowers)} layers on {target}: {err.strerror}") from err
    finally:
        os.close(fs)
