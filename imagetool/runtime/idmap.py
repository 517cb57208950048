"""User-namespace id maps for rootless containers: the caller becomes root inside.

Without privileges a process may map only its own uid/gid (one line each, after
writing "deny" to setgroups); newuidmap/newgidmap (setuid helpers from shadow) add the
subordinate ranges /etc/subuid and /etc/subgid grant, so images with several users work.
The maps are written from outside the namespace, by the process that started the helper.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from imagetool.errors import ContainerError
from imagetool.userns import subordinate  # one reading of /etc/subuid for the store and the containers

IdMap = list[tuple[int, int, int]]   # (inside, outside, count)


def maps_for(uid: int, gid: int, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> tuple[IdMap, IdMap]:
    """uid and gid maps: the caller as 0, then its subordinate ranges from 1 when the tools are present."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    uids: IdMap = [(0, uid, 1)]
    gids: IdMap = [(0, gid, 1)]
    if shutil.which("newuidmap") and shutil.which("newgidmap"):
        sub_u, sub_g = subordinate(subuid, name, uid), subordinate(subgid, name, uid)
        if sub_u and sub_g:
            uids.append((1, sub_u[0], sub_u[1]))
            gids.append((1, sub_g[0], sub_g[1]))
    return uids, gids


def _text(idmap: IdMap) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in idmap)


def apply(pid: int, uids: IdMap, gids: IdMap) -> None:
    """Write the maps of `pid`'s new user namespace (newuidmap/newgidmap for more than one line)."""
    try:
        if len(uids) > 1 or len(gids) > 1:
            for tool, idmap in (("newuidmap", uids), ("newgidmap", gids)):
                args = [str(v) for entry in idmap for v in entry]
                proc = subprocess.run([tool, str(pid), *args], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise ContainerError(f"{tool}: {proc.stderr.strip() or 'failed'}")
            return
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(_text(uids))
        if os.geteuid() != 0:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(_text(gids))
    except OSError as err:
        raise ContainerError(f"writing the user namespace id maps: {err}") from err


#: said once a process: a build runs many containers
_warned = False


def single_id_reason(uid: int, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> str | None:
    """Why only the caller's own ids can be mapped (None when subordinate ranges are usable)."""
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return "newuidmap/newgidmap are not installed"
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    if subordinate(subuid, name, uid) is None or subordinate(subgid, name, uid) is None:
        return f"{subuid} or {subgid} gives {name} no subordinate ids"
    return None


def rootless_maps() -> tuple[IdMap, IdMap]:
    """The caller's maps (maps_for); when they hold one id, say once on stderr what that costs."""
    global _warned
    uid, gid = os.getuid(), os.getgid()
    maps = maps_for(uid, gid)
    if len(maps[0]) == 1 and not _warned:
        _warned = True
        reason = single_id_reason(uid) or "no subordinate ids"
        import sys

        sys.stderr.write(f"imagetool: warning: {reason}: the user namespace maps only uid {uid} and gid {gid} "
                         "(as 0); files owned by other ids cannot be represented\n")
        sys.stderr.flush()
    return maps
