"""USER strings (name, uid, name:group, uid:gid ...) resolved against an image's /etc/passwd and /etc/group.

Follows docker/runc: a numeric uid need not exist in /etc/passwd (its gid is then 0
and its home "/"); a name must exist; supplementary groups are those in /etc/group
that list the user by name. Standard library only: the helper imports this.
"""

from __future__ import annotations

from imagetool.runtime.paths import read_in_root


class UserError(Exception):
    """The USER cannot be resolved in the image (the helper reports it as a container error)."""


class ExecUser:
    """uid, gid, supplementary groups, home directory (a plain class: dataclasses costs the helper start-up)."""

    def __init__(self, uid: int, gid: int, groups: list[int] | None = None, home: str = "/",
                 name: str | None = None) -> None:
        self.uid, self.gid, self.groups, self.home, self.name = uid, gid, list(groups or []), home, name


def _rows(root: str, path: str, fields: int) -> list[list[str]]:
    try:
        raw = read_in_root(root, path)
    except OSError:
        return []
    lines = raw.decode("utf-8", "replace").splitlines() if raw is not None else []
    rows = []
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve(user: str, root: str = "/") -> ExecUser:
    """The uid, gid, supplementary groups and home of `user` in the root filesystem at `root`."""
    passwd = _rows(root, "etc/passwd", 7)
    groups = _rows(root, "etc/group", 4)
    name_part, _, group_part = (user or "0").partition(":")
    name_part = name_part or "0"
    entry = None
    for row in passwd:
        if row[0] == name_part or (_int(name_part) is not None and _int(row[2]) == _int(name_part)):
            entry = row
            break
    if entry is None:
        uid = _int(name_part)
        if uid is None:
            raise UserError(f"unable to find user {name_part}: no matching entries in passwd file")
        result = ExecUser(uid, 0)
    else:
        uid_value, gid_value = _int(entry[2]), _int(entry[3])
        if uid_value is None or gid_value is None:
            raise UserError(f"malformed passwd entry for user {entry[0]}")
        result = ExecUser(uid_value, gid_value, home=entry[5] or "/", name=entry[0])
    if group_part:
        gid = _int(group_part)
        if gid is None:
            match = [row for row in groups if row[0] == group_part]
            if not match or _int(match[0][2]) is None:
                raise UserError(f"unable to find group {group_part}: no matching entries in group file")
            gid = _int(match[0][2])
        result.gid = gid  # type: ignore[assignment]
    if result.name is not None and not group_part:
        for row in groups:
            members = [m for m in row[3].split(",") if m]
            gid = _int(row[2])
            if result.name in members and gid is not None and gid not in result.groups:
                result.groups.append(gid)
    if result.gid not in result.groups:
        result.groups.insert(0, result.gid)
    return result


def _mapped(path: str) -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            rows = [line.split() for line in f.read().splitlines()]
    except OSError:
        return [(0, 1 << 32)]  # no user namespaces here: every id is itself
    return [(int(r[0]), int(r[2])) for r in rows if len(r) == 3]


def check_mapped(user: ExecUser) -> None:
    """Raise UserError naming the first id of `user` this process's user namespace does not map.

    A user with no subordinate ids maps only itself; setuid(1000) would then fail as a bare EINVAL.
    """
    uids, gids = _mapped("/proc/self/uid_map"), _mapped("/proc/self/gid_map")
    wanted = [("uid", user.uid, uids)] + [("gid", g, gids) for g in [user.gid, *user.groups]]
    for kind, number, ranges in wanted:
        if not any(start <= number < start + count for start, count in ranges):
            raise UserError(f"{kind} {number} is not mapped in the user namespace (the user running "
                            "imagetool needs subordinate ids in /etc/subuid and /etc/subgid)")
