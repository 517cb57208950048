"""Docker's and buildah's run flags (--cap-add, --ulimit, --tmpfs, --env-file, --add-host, -v) as spec pieces.

Each parser refuses a malformed value with one ContainerError line naming the flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imagetool.errors import ContainerError
from imagetool.runtime.spec import DEFAULT_CAPABILITIES, bind_mount


def capabilities(add: Sequence[str] = (), drop: Sequence[str] = (), base: Sequence[str] = DEFAULT_CAPABILITIES) \
        -> list[str]:
    """The default set `base` (Docker's, or spec.default_capabilities of the network) with --cap-add/--cap-drop
    applied (names with or without CAP_, any case; ALL)."""
    if not add and not drop:
        return list(base)
    from imagetool.runtime.linux import CAPABILITIES  # ctypes: only when asked

    def names(values: Sequence[str], flag: str) -> list[str]:
        out = []
        for value in values:
            name = value.upper()
            name = name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"
            if name != "ALL" and name not in CAPABILITIES:
                raise ContainerError(f"{flag} {value!r}: unknown capability")
            out.extend(CAPABILITIES if name == "ALL" else [name])
        return out

    dropped = set(names(drop, "--cap-drop"))
    caps = [c for c in base if c not in dropped]
    return caps + [c for c in names(add, "--cap-add") if c not in caps]


#: `--ulimit` names (Docker's) -> rlimit types
ULIMITS = {name: f"RLIMIT_{name.upper()}" for name in (
    "core", "cpu", "data", "fsize", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
    "rttime", "sigpending", "stack")}
RLIM_INFINITY = (1 << 64) - 1


def parse_ulimit(value: str) -> dict[str, Any]:
    """--ulimit NAME=SOFT[:HARD] (-1 or unlimited: no limit) -> a spec rlimit."""
    name, _, limits = value.partition("=")
    soft_text, _, hard_text = limits.partition(":")

    def number(text: str) -> int:
        if text in ("-1", "unlimited"):
            return RLIM_INFINITY
        if not text.isdigit():
            raise ContainerError(f"--ulimit {value!r}: expected NAME=SOFT[:HARD] with numbers")
        return int(text)

    if name not in ULIMITS:
        raise ContainerError(f"--ulimit {value!r}: unknown limit {name!r} (one of {', '.join(ULIMITS)})")
    soft = number(soft_text)
    hard = number(hard_text) if hard_text else soft
    if soft > hard:
        raise ContainerError(f"--ulimit {value!r}: the soft limit is above the hard one")
    return {"type": ULIMITS[name], "soft": soft, "hard": hard}


def tmpfs_mount(value: str) -> dict[str, Any]:
    """--tmpfs PATH[:OPTIONS] -> a tmpfs mount (noexec, nosuid and nodev unless OPTIONS say otherwise)."""
    destination, _, options = value.partition(":")
    if not destination.startswith("/"):
        raise ContainerError(f"--tmpfs {value!r}: the path must be absolute")
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": ["rw", "noexec", "nosuid", "nodev", *filter(None, options.split(","))]}


def parse_env_file(text: str) -> list[str]:
    """An --env-file: KEY=VALUE lines (or a bare KEY), blank lines and # comments skipped, as docker reads it."""
    return [line for line in (raw.lstrip() for raw in text.splitlines()) if line and not line.startswith("#")]


def parse_add_host(value: str) -> tuple[str, str]:
    """--add-host NAME:ADDRESS (or NAME=ADDRESS; an IPv6 address keeps its colons) -> (name, address)."""
    import ipaddress

    name, sep, address = value.partition("=") if "=" in value else value.partition(":")
    try:
        if not name or not sep or any(c.isspace() for c in name):
            raise ValueError
        return name, str(ipaddress.ip_address(address.strip("[]")))
    except ValueError as err:
        raise ContainerError(f"--add-host {value!r}: expected NAME:ADDRESS with an IP address") from err


def parse_volume(value: str, build: bool = False) -> dict[str, Any]:
    """-v SRC:DST[:OPTIONS] -> a bind mount entry (SRC must exist on the host).

    OPTIONS, comma-separated: ro or rw; z or Z (SELinux labels: accepted, and nothing to do, where
    SELinux is off); for build RUN steps also U (SRC is chowned to the step's user, as buildah does)
    and O (an overlay: the step writes over SRC into a throwaway layer), kept as "chown"/"overlay"
    keys that the build's step runner turns into mounts."""
    import os

    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ContainerError(f"volume {value!r}: expected SRC:DST[:OPTIONS]")
    flags = parts[2].split(",") if len(parts) == 3 else []
    allowed = {"ro", "rw", "z", "Z", *(("U", "O") if build else ())}
    unknown = [f for f in flags if f not in allowed]
    if unknown or ("ro" in flags and "rw" in flags):
        raise ContainerError(f"volume {value!r}: options are {', '.join(sorted(allowed))} "
                             f"(ro and rw exclusive)")
    if ("z" in flags or "Z" in flags) and os.path.exists("/sys/fs/selinux/enforce"):
        raise ContainerError(f"volume {value!r}: SELinux relabeling (z, Z) is not supported here")
    source = os.path.abspath(parts[0])
    if not os.path.exists(source):
        raise ContainerError(f"volume {value!r}: {source} does not exist")
    if "O" in flags and not os.path.isdir(source):
        raise ContainerError(f"volume {value!r}: an overlay (O) needs a directory")
    mount = bind_mount(source, parts[1], "ro" in flags)
    if "U" in flags:
        mount["chown"] = True
    if "O" in flags:
        mount["overlay"] = True
    return mount


def security_options(values: Sequence[str]) -> str | dict[str, Any]:
    """--security-opt seccomp=unconfined|PATH and no-new-privileges[=true] -> RunOptions.seccomp.

    Docker's KEY:VALUE spelling is read too. Containers always run with no_new_privs, so
    no-new-privileges=false is refused, as is any other key.
    """
    seccomp: str | dict[str, Any] = "default"
    for value in values:
        key, sep, arg = value.partition("=")
        if not sep and ":" in value:
            key, sep, arg = value.partition(":")
        if key == "seccomp" and arg:
            from imagetool.runtime.seccomp import load_profile

            seccomp = "unconfined" if arg == "unconfined" else load_profile(arg)
        elif key == "no-new-privileges" and arg.lower() in ("", "true", "1"):
            if sep and not arg:
                raise ContainerError(f"--security-opt {value!r}: expected no-new-privileges[=true]")
        elif key == "no-new-privileges":
            raise ContainerError(f"--security-opt {value!r}: containers always run with no-new-privileges")
        else:
            raise ContainerError(f"--security-opt {value!r}: unknown option (expected seccomp=unconfined, "
                                 "seccomp=PROFILE.json or no-new-privileges)")
    return seccomp
