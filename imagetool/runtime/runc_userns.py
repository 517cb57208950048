"""runc for an unprivileged user: runc runs inside a user and mount namespace of ours, as podman and buildah do.

An unprivileged user cannot mount the overlay root on the host. So `run_rootless` starts
`python -S -I runc_userns.py BUNDLE ERRFD READY GO`, which unshares a user namespace (this
side writes its id maps: the caller as 0, the subordinate ranges from 1, through
newuidmap/newgidmap), then a mount namespace, mounts the overlay on the bundle's rootfs
(native overlay in a user namespace, Linux >= 5.11), resolves the image's USER there and
execs `runc --root STATE run`. runc then finds itself root in a user namespace and runs
rootless: no cgroups, devices bound from the host. The spec keeps no user namespace of its
own: the container lives in ours, with the same ids as under the embedded executor.

The state directory is $XDG_RUNTIME_DIR/imagetool/runc (runc's own choice for rootless is
$XDG_RUNTIME_DIR/runc), else inside the bundle, which is private to this run.
The process side of the script is standard library plus the helper's modules.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

if __name__ == "__main__":  # as helper.py: the two packages as bare modules, no site-packages
    _runtime_dir = os.path.dirname(os.path.abspath(__file__))
    for _name, _path in (("imagetool", os.path.dirname(_runtime_dir)), ("imagetool.runtime", _runtime_dir)):
        _package = type(sys)(_name)
        _package.__path__ = [_path]
        sys.modules.setdefault(_name, _package)

EXIT_SETUP = 125
MARSHAL = "runc-userns.marshal"


def _fill_user(spec: dict, rootfs: str) -> None:
    """process.user from the image's USER (runc wants numbers), HOME from its passwd entry."""
    from imagetool.runtime import users

    annotations = spec.get("annotations") or {}
    process = spec["process"]
    name = annotations.get("org.imagetool.user") or \
        f"{process['user'].get('uid', 0)}:{process['user'].get('gid', 0)}"
    user = users.resolve(name, rootfs)
    users.check_mapped(user)
    process["user"] = {"uid": user.uid, "gid": user.gid, **({"additionalGids": user.groups} if user.groups else {})}
    if not any(e.startswith("HOME=") for e in process["env"]):
        process["env"].append(f"HOME={user.home}")


def main(argv: list[str]) -> int:
    """In the fresh process: user namespace, mount namespace, overlay, config.json, exec runc."""
    import json
    import signal

    from imagetool.runtime import linux
    from imagetool.runtime.rootfs import mount_overlay
    from imagetool.runtime.users import UserError

    bundle, errfd, ready, go = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # kept across exec: runc dies with imagetool
    if os.getppid() == 1:
        return EXIT_SETUP
    with open(os.path.join(bundle, MARSHAL), "rb") as f:
        spec, overlay, args = marshal.load(f)
    step = "creating a user namespace"
    try:
        linux.unshare(linux.CLONE_NEWUSER)
        os.write(ready, b"R")
        if os.read(go, 1) != b"G":
            return EXIT_SETUP
        os.close(ready)
        os.close(go)
        step = "creating a mount namespace"
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        step = "mounting the root filesystem"
        rootfs = os.path.join(bundle, spec["root"]["path"])
        mount_overlay(rootfs, overlay["lower"], overlay["upper"], overlay["work"], volatile=overlay["volatile"])
        step = "resolving the user"
        _fill_user(spec, rootfs)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
    except UserError as err:
        os.write(errfd, f"{err}\n".encode())
        return EXIT_SETUP
    except OSError as err:
        os.write(errfd, f"{step}: {err.strerror or err}\n".encode())
        return EXIT_SETUP
    except Exception as err:  # noqa: BLE001 - one line on the error pipe, never a traceback
        os.write(errfd, f"{step}: {err}\n".encode())
        return EXIT_SETUP
    os.close(errfd)
    try:
        os.execv(args[0], args)
    except OSError as err:
        sys.stderr.write(f"imagetool: exec {args[0]}: {err.strerror}\n")
    return EXIT_SETUP


# -- the caller's side (the full package is available here)

def state_dir(bundle: str) -> str:
    """Where runc keeps its state: a private directory under $XDG_RUNTIME_DIR, else the (private) bundle."""
    from imagetool.tmpdirs import user_runtime_dir

    base = user_runtime_dir()
    path = os.path.join(str(base), "runc") if base is not None else os.path.join(bundle, "runc-state")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def sweep_stale(runc: str, state: str) -> None:
    """Delete what runs of a killed imagetool left in `state`: containers whose init process is gone
    (nothing deleted them: their `runc delete` was in the killed process). A live one is never touched."""
    import json
    import subprocess

    try:
        names = os.listdir(state)
    except OSError:
        return
    for name in names:
        try:
            with open(os.path.join(state, name, "state.json"), encoding="utf-8") as f:
                pid = int(json.load(f)["init_process_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being created, or not runc's: leave it
        if pid > 0 and os.path.exists(f"/proc/{pid}"):
            continue
        subprocess.run([runc, "--root", state, "delete", "--force", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def rootless_spec(spec: dict, gids: list[tuple[int, int, int]]) -> None:
    """What runc's own `spec --rootless` changes and still applies inside our user namespace.

    No cgroup settings unless a cgroup was delegated to the user (cgroups.prepare then set
    linux.cgroupsPath to it); devpts without a gid= the namespace does not map (the single-id
    map of a user with no subordinate ranges).
    """
    linux = spec.setdefault("linux", {})
    if not linux.get("cgroupsPath"):
        linux.pop("resources", None)
    mapped = [(inside, count) for inside, _outside, count in gids]
    for m in spec.get("mounts") or []:
        kept = []
        for opt in m.get("options") or []:
            if opt.startswith("gid=") and opt[4:].isdigit() and \
                    not any(lo <= int(opt[4:]) < lo + n for lo, n in mapped):
                continue
            kept.append(opt)
        if "options" in m:
            m["options"] = kept


def run_rootless(spec: dict[str, Any], bundle: str, overlay: dict[str, Any], runc: str, cid: str,
                 maps: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]],
                 stdin: Any, stdout: Any, stderr: Any, output: Callable[[str], None] | None,
                 flags: Sequence[str] = ()) -> int:
    """Run the bundle under runc inside a user namespace with `maps`; returns the exit status."""
    import subprocess

    from pathlib import Path

    from imagetool.errors import ContainerError
    from imagetool.runtime import cancel, idmap, netstack
    from imagetool.runtime.oci_runtime import kill_container
    from imagetool.runtime.container import _sync_steps, wait_forwarding, wait_forwarding_quietly

    rootless_spec(spec, maps[1])
    state = state_dir(bundle)
    sweep_stale(runc, state)
    args = [runc, "--root", state, *flags, "run", "--bundle", bundle, cid]
    with netstack.for_runc(spec, Path(bundle)) as network:  # its hook goes into the spec written below
        with open(os.path.join(bundle, MARSHAL), "wb") as f:
            marshal.dump((spec, overlay, args), f)
        read_end, write_end = os.pipe()
        to_child, from_child = os.pipe(), os.pipe()
        theirs, ours = [from_child[1], to_child[0]], [from_child[0], to_child[1]]
        argv = [sys.executable, "-S", "-I", os.path.abspath(__file__), bundle, str(write_end), *map(str, theirs)]
        try:
            proc = subprocess.Popen(argv, pass_fds=[write_end, *theirs], stdin=stdin, stdout=stdout, stderr=stderr)
        except OSError:
            for fd in (read_end, *ours):
                os.close(fd)
            raise
        finally:
            for fd in (write_end, *theirs):
                os.close(fd)
        try:
            with open(read_end, "rb") as errors:
                try:
                    _sync_steps(ours[0], ours[1], [(b"R", lambda: idmap.apply(proc.pid, maps[0], maps[1]))])
                except ContainerError:
                    wait_forwarding_quietly(proc.pid)
                    raise
                network.attach(proc)
                with cancel.killing(lambda: kill_container([runc, "--root", state, *flags], cid, proc)):
                    code = wait_forwarding(proc, output)
                message = errors.read().decode(errors="replace").strip()
        finally:
            # a killed runc leaves its state (and maybe the container): remove both, as the owner of the namespace
            subprocess.run([runc, "--root", state, *flags, "delete", "--force", cid], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        network.check()
    if message:
        err = ContainerError(message.splitlines()[-1])
        err.exit_code = EXIT_SETUP
        raise err
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
