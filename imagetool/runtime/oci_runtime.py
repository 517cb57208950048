"""The same spec under runc: mount the overlay on the host, resolve the user, `runc run` the bundle.

This is the cross-check for the embedded executor (both run one spec) and a fallback.
runc wants numeric ids in the spec, so the image's USER is resolved here, reading
/etc/passwd and /etc/group through the mounted root with symlinks kept inside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imagetool.errors import ContainerError
from imagetool.runtime import cancel, netstack, overlay, users
from imagetool.runtime.spec import ANNOTATION_INIT, ANNOTATION_USER


#: the exit status of a container that could not be set up, as with the embedded executor (and docker)
EXIT_SETUP = 125


def _setup_error(message: str) -> ContainerError:
    err = ContainerError(message)
    err.exit_code = EXIT_SETUP
    return err


def runc_binary() -> str:
    path = shutil.which(os.environ.get("IMAGETOOL_RUNC", "runc"))
    if path is None:
        raise _setup_error("runc is not installed (needed for --runtime runc)")
    return path


def resolve_user(spec: dict[str, Any], rootfs: Path) -> None:
    """Fill process.user (and HOME) from the annotation naming the image's USER."""
    annotations = spec.get("annotations") or {}
    process = spec["process"]
    name = annotations.get(ANNOTATION_USER) or f"{process['user'].get('uid', 0)}:{process['user'].get('gid', 0)}"
    try:
        user = users.resolve(name, str(rootfs))
    except users.UserError as err:
        raise _setup_error(str(err)) from err
    process["user"] = {"uid": user.uid, "gid": user.gid,
                       **({"additionalGids": user.groups} if user.groups else {})}
    if not any(e.startswith("HOME=") for e in process["env"]):
        process["env"].append(f"HOME={user.home}")


def run_runc(spec: dict[str, Any], bundle: Path, lowers: list[Path], upper: Path, work: Path,
             stdin: Any, stdout: Any, stderr: Any, output: Callable[[str], None] | None,
             maps: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None = None,
             flags: Sequence[str] = ()) -> int:
    """Run the bundle under runc (with global `flags` before the command); with `maps`, rootless: runc in a
    user namespace of ours with those id maps."""
    from imagetool.runtime.container import wait_forwarding

    if (spec.get("annotations") or {}).get(ANNOTATION_INIT) == "true":
        raise _setup_error("--init is not available with --runtime runc")
    runc = runc_binary()
    cid = f"imagetool-{os.urandom(6).hex()}"
    if maps is not None:
        from imagetool.runtime.runc_userns import run_rootless

        described = {**overlay.describe(lowers, upper, work), "volatile": True}
        return run_rootless(spec, str(bundle), described, runc, cid, maps, stdin, stdout, stderr, output,
                            flags=flags)
    rootfs = bundle / spec["root"]["path"]
    overlay.mount_on_host(rootfs, lowers, upper, work)
    try:
        resolve_user(spec, rootfs)
        with netstack.for_runc(spec, bundle) as network:  # a hook in the spec when the network is private
            (bundle / "config.json").write_text(json.dumps(spec))
            proc = subprocess.Popen([runc, *flags, "run", "--bundle", str(bundle), cid], stdin=stdin, stdout=stdout,
                                    stderr=stderr)
            network.attach(proc)
            with cancel.killing(lambda: kill_container([runc, *flags], cid, proc)):
                code = wait_forwarding(proc, output)
            network.check()
            return code
    finally:
        subprocess.run([runc, *flags, "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        overlay.unmount_on_host(rootfs)


def kill_container(runc: list[str], cid: str, proc: subprocess.Popen[bytes]) -> None:
    """End a container `runc run` is running (a cancelled build's): runc forwards no SIGKILL, so ask runc
    to send it; a container not made yet is stopped by ending runc itself."""
    done = subprocess.run([*runc, "kill", cid, "KILL"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        proc.kill()
