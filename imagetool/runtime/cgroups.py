"""A control group for each container: placed, limited, joined and removed again.

`prepare(spec)` picks the container's cgroup (cgroup v2, or the v1 hierarchies of a legacy or
hybrid host) and records it in the spec as `linux.cgroupsPath` with a read-only /sys/fs/cgroup
mount, so runc places the container exactly where the embedded executor does. For the embedded
executor, `Cgroup.create()` makes the directories and writes the spec's `linux.resources` (memory,
pids, cpu, and on v1 the device rules followed by runc's default allow-list); the container's
PID 1 calls `join()` before anything else, so no process of the container runs outside; `remove()`
deletes the directories after the container ended, and `sweep()` those a killed run left behind.

Paths follow runc's cgroupfs driver: root uses the absolute /imagetool/<id> in every hierarchy;
an unprivileged user needs a delegated cgroup, and gets imagetool/<id> under its own cgroup (v1)
or under the parent of its own cgroup (v2). Without one, the limits are dropped with one warning.
Device rules are written by root on v1 only: v1 lets no unprivileged user write them (runc skips
them too), and v2 needs a BPF program, which the embedded executor does not load (runc does); there
the container's own device nodes are kept unusable by nodev mounts and the user namespace instead.

`join` runs in the helper: this module imports only the standard library's os, errno and sys.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs the helper milliseconds of start-up
    from typing import Any

MOUNTINFO = "/proc/self/mountinfo"
OWN_CGROUP = "/proc/self/cgroup"
PARENT = "imagetool"
#: the v1 hierarchies runc's cgroupfs driver places a container in, in its order
V1_SUBSYSTEMS = ["cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "net_cls",
                 "net_prio", "perf_event", "freezer", "rdma", "name=systemd"]
#: the v2 controllers the spec's limits need
V2_CONTROLLERS = ["cpu", "memory", "pids"]
#: runc's default device rules (libcontainer/specconv AllowedDevices, without tun/tap as runc dropped it):
#: mknod of any node, and use of the standard character devices, the console's ptys and ptmx
DEFAULT_DEVICE_RULES: list[tuple[str, str]] = [
    ("c *:* m", "allow"), ("b *:* m", "allow"), ("c 1:3 rwm", "allow"), ("c 1:8 rwm", "allow"),
    ("c 1:7 rwm", "allow"), ("c 5:0 rwm", "allow"), ("c 1:5 rwm", "allow"), ("c 1:9 rwm", "allow"),
    ("c 136:* rwm", "allow"), ("c 5:2 rwm", "allow")]
#: an empty container cgroup older than this (seconds) is what a run killed before its clean-up left
STALE_AFTER = 60.0
#: spec resources that are not limits (the warning for an unusable cgroup ignores them)
_NOT_LIMITS = ("devices",)
_warned = False


def join(procs: list[str], pid: int = 0) -> None:
    """Move process `pid` (0: the calling one) into each cgroup (by its cgroup.procs file); its children are
    born there."""
    for path in procs:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)


class Hierarchy:
    """One mounted cgroup hierarchy: v1 with its subsystems, or the unified (v2) one."""

    def __init__(self, mountpoint: str, root: str, subsystems: list[str], unified: bool) -> None:
        self.mountpoint = mountpoint
        self.root = root
        self.subsystems = subsystems
        self.unified = unified

    @property
    def key(self) -> str:
        """Its name in /proc/self/cgroup: the subsystems (v1) or "" (v2)."""
        return "" if self.unified else ",".join(self.subsystems)


def hierarchies() -> list[Hierarchy]:
    """The cgroup mounts of this host (one per hierarchy), from /proc/self/mountinfo."""
    found: dict[str, Hierarchy] = {}
    try:
        with open(MOUNTINFO) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts, tail = fields.split(), rest.split()
        if len(parts) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = parts[4].replace("\\040", " ")
        if tail[0] == "cgroup2":
            found.setdefault("", Hierarchy(mountpoint, parts[3], [], True))
            continue
        subsystems = [o for o in tail[2].split(",") if o in V1_SUBSYSTEMS]
        if subsystems:
            found.setdefault(",".join(subsystems), Hierarchy(mountpoint, parts[3], subsystems, False))
    return list(found.values())


def own_cgroups() -> dict[str, str]:
    """This process's cgroup path in each hierarchy, keyed as Hierarchy.key."""
    out = {}
    try:
        with open(OWN_CGROUP) as f:
            for line in f.read().splitlines():
                _, names, path = line.split(":", 2)
                out[names] = path
    except OSError:
        pass
    return out


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK)


class Cgroup:
    """A container's cgroup: `path` as the spec's cgroupsPath, one directory per hierarchy."""

    def __init__(self, path: str, dirs: list[tuple[Hierarchy, str, str]], rootless: bool = False) -> None:
        self.path = path
        #: an unprivileged user's delegated cgroup: v1 device rules need CAP_SYS_ADMIN (runc skips them too)
        self.rootless = rootless
        #: (hierarchy, the directory it is placed under, the container's directory)
        self.dirs = dirs
        self.unified = any(h.unified and h.mountpoint == "/sys/fs/cgroup" for h, _, _ in dirs)

    def procs(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for _, _, d in self.dirs]

    # -- the embedded executor's side: create with the limits, remove afterwards

    def create(self, resources: dict[str, Any]) -> None:
        """Make the directories and write the spec's limits (before the container's PID 1 joins)."""
        for hierarchy, base, target in self.dirs:
            self._mkdirs(hierarchy, base, target)
        try:
            if self.unified:
                self._write_v2(resources)
            else:
                self._write_v1(resources)
        except OSError as err:
            self.remove()
            raise _error(f"setting cgroup limits: {err.strerror}: {err.filename}") from err

    def _mkdirs(self, hierarchy: Hierarchy, base: str, target: str) -> None:
        rel = os.path.relpath(target, base)
        here = base
        for part in rel.split(os.sep):
            parent, here = here, os.path.join(here, part)
            if hierarchy.unified and self.unified:
                _enable_controllers(parent)
            try:
                os.mkdir(here, 0o755)
            except FileExistsError:
                pass
            except OSError as err:
                raise _error(f"creating cgroup {here}: {err.strerror}") from err
            if "cpuset" in hierarchy.subsystems:
                _copy_cpuset(parent, here)

    def controllers(self) -> set[str]:
        """The controllers the container's cgroup will have. On v2 the directories above it are made here, each
        with what it can pass on enabled for its children (a cgroup holding processes, as in a cgroup
        namespace's root, may not: then the limits needing them cannot be had)."""
        if not self.unified:
            return {s for h, _, _ in self.dirs for s in h.subsystems}
        [(hierarchy, base, target)] = self.dirs
        parent = os.path.dirname(target)
        if parent != base:
            self._mkdirs(hierarchy, base, parent)
        _enable_controllers(parent)
        try:
            with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                return set(f.read().split())
        except OSError:
            return set()

    def _dir(self, subsystem: str) -> str | None:
        return next((d for h, _, d in self.dirs if subsystem in h.subsystems), None)

    def _write_v1(self, resources: dict[str, Any]) -> None:
        memory, pids, cpu = (resources.get(k) or {} for k in ("memory", "pids", "cpu"))
        if memory.get("limit"):
            where = self._need("memory")
            _write(where, "memory.limit_in_bytes", memory["limit"])
            if memory.get("swap"):
                _write(where, "memory.memsw.limit_in_bytes", memory["swap"])
        if pids.get("limit"):
            _write(self._need("pids"), "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        if cpu:
            where = self._need("cpu")
            if cpu.get("shares"):
                _write(where, "cpu.shares", cpu["shares"])
            if cpu.get("period"):
                _write(where, "cpu.cfs_period_us", cpu["period"])
            if cpu.get("quota"):
                _write(where, "cpu.cfs_quota_us", cpu["quota"])
        devices = self._dir("devices")
        if devices is not None and not self.rootless:
            for rule, kind in [*_spec_device_rules(resources.get("devices") or []), *DEFAULT_DEVICE_RULES]:
                _write(devices, f"devices.{kind}", rule)

    def _write_v2(self, resources: dict[str, Any]) -> None:
        [where] = [d for h, _, d in self.dirs if h.unified]
        memory, pids, cpu = (resources.get(k) or {} for k in ("memory", "pids", "cpu"))
        if memory.get("limit"):
            _write(where, "memory.max", memory["limit"])
            swap = memory.get("swap")
            if swap and os.path.exists(os.path.join(where, "memory.swap.max")):
                _write(where, "memory.swap.max", "max" if swap < 0 else max(swap - memory["limit"], 0))
        if pids.get("limit"):
            _write(where, "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        if cpu.get("shares"):  # runc's conversion of shares (2..262144) to a weight (1..10000)
            _write(where, "cpu.weight", 1 + ((cpu["shares"] - 2) * 9999) // 262142)
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or -1
            _write(where, "cpu.max", f"{quota if quota > 0 else 'max'} {cpu.get('period') or 100000}")

    def swap_accounting(self) -> bool:
        """Whether v1 memory cgroups here can limit memory plus swap (memory.memsw.*)."""
        return any(os.path.exists(os.path.join(base, "memory.memsw.limit_in_bytes"))
                   for h, base, _ in self.dirs if "memory" in h.subsystems)

    def _need(self, subsystem: str) -> str:
        found = self._dir(subsystem)
        if found is None:
            raise _error(f"the {subsystem} cgroup controller is not mounted: its limits cannot be applied")
        return found

    def remove(self) -> None:
        """Delete the container's directories; anything still in them (there should be nothing) is killed."""
        for _, _, target in reversed(self.dirs):
            _rmdir(target)

    def sweep(self) -> None:
        """Remove what killed runs left beside this cgroup: empty container cgroups older than STALE_AFTER (a
        running container's is never empty, and a new one is joined within moments of being made)."""
        import time

        parents = [os.path.dirname(d) for _, _, d in self.dirs]
        try:
            names = os.listdir(parents[0])
        except OSError:
            return
        now = time.time()
        for name in names:
            dirs = [os.path.join(p, name) for p in parents]
            try:
                if not os.path.isdir(dirs[0]) or now - os.stat(dirs[0]).st_mtime < STALE_AFTER:
                    continue
            except OSError:
                continue
            if all(_empty(d) for d in dirs):
                for d in reversed(dirs):
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass

    # -- the view inside: /sys/fs/cgroup as runc mounts it, for the embedded executor

    def helper_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`spec` with its cgroup mount spelled as mounts the helper makes: a tmpfs and a read-only bind of
        each v1 directory (and of each subsystem name of a co-mounted one, where runc puts a symlink); on
        v2 the cgroup2 filesystem, or for an unprivileged user a bind of its own directory."""
        mounts: list[dict[str, Any]] = []
        for m in spec.get("mounts") or []:
            mounts.extend(self._view(m) if m.get("type") == "cgroup" else [m])
        return {**spec, "mounts": mounts}

    def _view(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        dest = m["destination"].rstrip("/")
        options = [o for o in m.get("options") or [] if o in ("ro", "nosuid", "noexec", "nodev")]
        if self.unified:
            [target] = [d for h, _, d in self.dirs if h.unified]
            if not self.rootless:
                return [{"destination": dest, "type": "cgroup2", "source": "cgroup2", "options": options}]
            return [{"destination": dest, "type": "bind", "source": target, "options": ["rbind", *options]}]
        out = [{"destination": dest, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "noexec", "nodev", "mode=755"]}]
        for hierarchy, _, target in self.dirs:
            if hierarchy.unified:
                continue  # runc binds only the v1 hierarchies
            name = os.path.basename(hierarchy.mountpoint)
            names = [name] + ([s for s in hierarchy.subsystems if s != name] if "," in name else [])
            out += [{"destination": f"{dest}/{n}", "type": "bind", "source": target,
                     "options": ["rbind", "nosuid", "noexec", "nodev", *options]} for n in names]
        return out


def place(cid: str, rootless: bool) -> tuple[Cgroup | None, str]:
    """Where a container `cid` goes, or (None, why not) when this user has no cgroup to use."""
    found = hierarchies()
    unified = next((h for h in found if h.unified and h.mountpoint == "/sys/fs/cgroup"), None)
    chosen = [unified] if unified else [h for h in found if not h.unified or h.mountpoint ==
                                        "/sys/fs/cgroup/unified"]
    if not chosen or (unified is None and all(h.unified for h in chosen)):
        return None, "no cgroup hierarchy is mounted"
    if not rootless:
        if not all(_writable(h.mountpoint) for h in chosen):
            return None, "the cgroup filesystem is not writable"
        path = f"/{PARENT}/{cid}"
        return Cgroup(path, [(h, h.mountpoint, h.mountpoint + path) for h in chosen]), ""
    own = own_cgroups()
    path = f"{PARENT}/{cid}"
    dirs = []
    for h in chosen:
        mine = own.get(h.key)
        if mine is None:
            return None, f"this process is in no {h.key or 'unified'} cgroup"
        if h is unified:  # runc's v2 driver: beside our own cgroup, which holds processes and cannot have children
            mine = os.path.dirname(mine)
        base = os.path.join(h.mountpoint, os.path.relpath(mine, h.root))
        if not (_writable(base) and _writable(os.path.join(base, "cgroup.procs"))):
            kind = "writable delegated cgroup v2 subtree" if unified else "delegated cgroup (cgroup v1)"
            return None, f"this user has no {kind}"
        dirs.append((h, base, os.path.normpath(os.path.join(base, path))))
    return Cgroup(path, dirs, rootless=True), ""


def prepare(spec: dict[str, Any], rootless: bool | None = None) -> Cgroup | None:
    """Give a run's spec its own cgroup (linux.cgroupsPath and the /sys/fs/cgroup mount); where the user has
    none to use, drop the limits from the spec and say so once on stderr."""
    rootless = os.geteuid() != 0 if rootless is None else rootless
    linux = spec.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    group, why = place(os.urandom(6).hex(), rootless)
    if group is None:
        limits = {k: v for k, v in resources.items() if k not in _NOT_LIMITS}
        if limits and not _only_default(limits):
            warn_once(f"resource limits are ignored: {why}")
        for key in limits:
            del resources[key]
        linux.pop("cgroupsPath", None)
        return None
    linux["cgroupsPath"] = group.path
    _check_controllers(resources, group.controllers())
    group.sweep()
    memory = resources.get("memory") or {}
    if memory.get("swap") and not group.unified and not group.swap_accounting():
        memory.pop("swap")  # no swap accounting in this kernel: runc would fail to write it
    if not any(m.get("destination", "").rstrip("/") == "/sys/fs/cgroup" for m in spec.get("mounts") or []):
        spec.setdefault("mounts", []).append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    return group


def _check_controllers(resources: dict[str, Any], available: set[str]) -> None:
    """Every limit needs its controller: the default pids limit goes quietly without one, others fail."""
    for key in ("memory", "pids", "cpu"):
        if resources.get(key) and key not in available:
            if _only_default({key: resources[key]}):
                del resources[key]
            else:
                raise _error(f"the {key} cgroup controller is not available here: its limit cannot be applied")


def _only_default(limits: dict[str, Any]) -> bool:
    """Podman's default pids limit alone is dropped quietly, as podman does for rootless cgroup v1."""
    from imagetool.runtime.resources import DEFAULT_PIDS_LIMIT

    return limits == {"pids": {"limit": DEFAULT_PIDS_LIMIT}}


def warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        sys.stderr.write(f"imagetool: warning: {message}\n")
        sys.stderr.flush()


def _spec_device_rules(rules: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for rule in rules:
        kind = rule.get("type") or "a"
        major = "*" if rule.get("major") in (None, -1) else rule["major"]
        minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
        entry = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"
        out.append((entry, "allow" if rule.get("allow") else "deny"))
    return out


def _write(directory: str, name: str, value: object) -> None:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from err
    finally:
        os.close(fd)


def _enable_controllers(directory: str) -> None:
    """Let a v2 cgroup's children have the controllers the limits need (those it has)."""
    try:
        with open(os.path.join(directory, "cgroup.controllers")) as f:
            available = f.read().split()
        with open(os.path.join(directory, "cgroup.subtree_control")) as f:
            enabled = f.read().split()
    except OSError:
        return
    for name in V2_CONTROLLERS:
        if name in available and name not in enabled:
            try:
                _write(directory, "cgroup.subtree_control", f"+{name}")
            except OSError:
                pass  # a limit that needs it fails with a clear message when written


def _copy_cpuset(parent: str, child: str) -> None:
    """A new v1 cpuset cgroup starts with no CPUs or memory nodes: give it its parent's, as runc does."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        try:
            with open(os.path.join(child, name)) as f:
                if f.read().strip():
                    continue
            with open(os.path.join(parent, name)) as f:
                _write(child, name, f.read().strip())
        except OSError:
            pass


def _empty(directory: str) -> bool:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return not f.read().strip()
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _rmdir(path: str) -> None:
    import signal
    import time

    for attempt in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                return
        if attempt >= 10:  # the container has ended: whatever is still here would outlive it
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            except OSError:
                pass
        time.sleep(0.01 * min(attempt + 1, 10))


def _error(message: str) -> Exception:
    from imagetool.errors import ContainerError

    return ContainerError(message)
