"""An image config plus user overrides -> an OCI runtime-spec config (what runc and the helper both run).

Defaults follow `runc spec` and Docker: the default mounts, Docker's default
capability set, runc's masked and read-only /proc paths, a 1048576 open-file limit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from imagetool.errors import ContainerError
from imagetool.runtime.resources import default_resources

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capabilities (moby oci/caps/defaults.go)
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

DEFAULT_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
]

#: annotations the embedded helper reads (runc ignores them)
ANNOTATION_USER = "org.imagetool.user"
ANNOTATION_INIT = "org.imagetool.init"
#: private (a network namespace with slirp4netns attached), none (loopback only) or host
ANNOTATION_NETWORK = "org.imagetool.network"


@dataclass
class RunOptions:
    """What `imagetool run` (or a RUN step) changes relative to the image config."""

    args: list[str] | None = None          # replaces Cmd (Entrypoint stays)
    entrypoint: list[str] | None = None    # replaces Entrypoint ([] clears it)
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    terminal: bool = False
    hostname: str = "container"
    network: str = "private"               # private (user-mode stack) | none (loopback only) | host (unsafe)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    readonly_rootfs: bool = False
    init: bool = False
    capabilities: list[str] | None = None
    #: rlimits replacing the defaults of the same type (--ulimit)
    rlimits: list[dict[str, Any]] = field(default_factory=list)
    #: fixed uid/gid when the user is already resolved (runc needs numbers in the spec)
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    #: "default" (Docker's profile), "unconfined", or a Docker seccomp profile (--security-opt seccomp=...)
    seccomp: str | dict[str, Any] = "default"
    #: linux.resources limits (memory, pids, cpu) from runtime.resources.Limits; podman's pids limit by default
    resources: dict[str, Any] = field(default_factory=default_resources)


def default_capabilities(network: str = "private") -> list[str]:
    """Docker's set; in a private network without CAP_NET_RAW: a raw packet for 127.0.0.1 handed to tap0
    makes slirp4netns connect to the host's loopback, which --disable-host-loopback does not stop (only
    the gateway's alias). podman and buildah leave CAP_NET_RAW out of their defaults too."""
    return [c for c in DEFAULT_CAPABILITIES if not (network == "private" and c == "CAP_NET_RAW")]


def nofile_limit() -> dict[str, Any]:
    """1048576 open files as Docker sets, or as many as this process may have when that is fewer."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    value = 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)
    return {"type": "RLIMIT_NOFILE", "hard": value, "soft": value}


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """KEY=VALUE lists, later keys replacing earlier ones in place (Docker's order)."""
    out: dict[str, str] = {}
    for item in [*base, *overrides]:
        key, sep, value = item.partition("=")
        if not key:
            raise ContainerError(f"invalid environment variable {item!r}")
        out[key] = f"{key}={value}" if sep else item
    return list(out.values())


def process_args(config: dict[str, Any], options: RunOptions) -> list[str]:
    entrypoint = options.entrypoint if options.entrypoint is not None else list(config.get("Entrypoint") or [])
    if options.args:
        cmd = list(options.args)
    elif options.entrypoint is not None:
        cmd = []
    else:
        cmd = list(config.get("Cmd") or [])
    args = [*entrypoint, *cmd]
    if not args:
        raise ContainerError("no command given and the image has no Entrypoint or Cmd")
    return args


def build_spec(config: dict[str, Any] | None, options: RunOptions, root_path: str = "rootfs") -> dict[str, Any]:
    """The runtime spec for running `config` (the image config's "config" object) with `options`."""
    config = config or {}
    env = merge_env(list(config.get("Env") or []), [])
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, DEFAULT_PATH)
    extra = [f"HOSTNAME={options.hostname}"] if options.hostname else []
    if options.terminal:
        extra.append("TERM=xterm")
    env = merge_env(env, [*extra, *options.env])
    cwd = options.workdir or config.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise ContainerError(f"working directory {cwd!r} is not absolute")
    caps = list(options.capabilities if options.capabilities is not None else default_capabilities(options.network))
    user = options.user if options.user is not None else (config.get("User") or "")
    if options.network not in ("private", "none", "host"):
        raise ContainerError(f"unknown network {options.network!r} (private, none or host)")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if options.network != "host":
        namespaces.append({"type": "network"})
    mounts = copy.deepcopy(DEFAULT_MOUNTS)
    if options.network == "host":
        # sysfs of another network namespace cannot be mounted; bind the host's read-only, as runc does,
        # every mount below too (the host's cgroup hierarchies); the container's own cgroups go over them
        sysfs = next(i for i, m in enumerate(mounts) if m["destination"] == "/sys")
        mounts[sysfs] = {"destination": "/sys", "type": "bind", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]}
    mounts.extend(options.mounts)
    from imagetool.runtime.seccomp import for_spec

    seccomp = for_spec(options.seccomp, caps)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": options.terminal,
            "user": {"uid": options.uid or 0, "gid": options.gid or 0,
                     **({"additionalGids": options.groups} if options.groups else {})},
            "args": process_args(config, options),
            "env": env,
            "cwd": cwd,
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": _rlimits(options.rlimits),
            "noNewPrivileges": True,
        },
        "root": {"path": root_path, "readonly": options.readonly_rootfs},
        "hostname": options.hostname,
        "mounts": mounts,
        "annotations": {ANNOTATION_USER: user, ANNOTATION_INIT: "true" if options.init else "false",
                        ANNOTATION_NETWORK: options.network},
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}], **copy.deepcopy(options.resources)},
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            **({"seccomp": seccomp} if seccomp else {}),
        },
    }


def _rlimits(overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    given = {r["type"] for r in overrides}
    return [r for r in [nofile_limit()] if r["type"] not in given] + overrides


def bind_mount(source: str, destination: str, readonly: bool = False) -> dict[str, Any]:
    """A spec mount entry for a host path (a volume); read-only means every mount below it too ("rro")."""
    if not destination.startswith("/"):
        raise ContainerError(f"mount destination {destination!r} is not absolute")
    options = ["rbind", "rprivate"] + (["ro", "rro"] if readonly else [])
    return {"destination": destination, "type": "bind", "source": source, "options": options}
