"""A snapshot tree cloned by hard links: a layer's tree depends only on its diff_id, not on its parent.

The same layer on another parent (an image whose middle layer changed keeps the layers above
it, under new chain IDs) gets its snapshot as a clone of the one already published: directories,
symlinks, devices (whiteouts included) and fifos are made anew with the same owner, mode,
mtime and xattrs (opaque markers included); regular files are hard-linked, so they are the
same inodes, metadata and all. Rootless, the caller runs this inside the store's user
namespace, where the source's subordinate owners are mapped and can be given again.
"""

from __future__ import annotations

import os
import stat


def _xattrs(src: str, dst: str) -> None:
    for name in os.listxattr(src, follow_symlinks=False):
        os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)


def _finish(src_st: os.stat_result, src: str, dst: str, symlink: bool = False) -> None:
    """Owner, then mode (a chown clears set-id bits), xattrs, and last the times."""
    os.lchown(dst, src_st.st_uid, src_st.st_gid)
    if not symlink:
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    _xattrs(src, dst)
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def clone_tree(src: str, dst: str) -> None:
    """Make `dst` (absent) a hard-link clone of the tree `src`. Raises OSError when `src` changes under
    it (a file gone) or holds what a layer cannot (a socket): the caller then builds the tree anew."""
    root_st = os.lstat(src)
    if not stat.S_ISDIR(root_st.st_mode):
        raise NotADirectoryError(src)
    os.mkdir(dst, 0o700)
    dirs: list[tuple[str, str, os.stat_result]] = [(src, dst, root_st)]
    pending = [(src, dst)]
    while pending:  # no recursion: a layer's tree may be deeper than Python's stack
        s_dir, d_dir = pending.pop()
        with os.scandir(s_dir) as entries:
            names = [e.name for e in entries]
        for name in names:
            s, d = os.path.join(s_dir, name), os.path.join(d_dir, name)
            st = os.lstat(s)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)  # its own mode once its entries are in (it may be read-only)
                dirs.append((s, d, st))
                pending.append((s, d))
            elif stat.S_ISREG(mode):
                os.link(s, d, follow_symlinks=False)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
                _finish(st, s, d, symlink=True)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
                _finish(st, s, d)
            else:
                raise OSError(f"{s}: not a kind of file a layer holds")
    for s, d, st in reversed(dirs):  # children first: nothing is created in a directory after its times
        _finish(st, s, d)
