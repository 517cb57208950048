"""Compiled code of the methods dataclasses and namedtuples generate, kept from one command to the next.

@dataclass writes each method it adds (__init__, __repr__, __eq__, __hash__, ...) as source text and
compiles it with exec(), one compile per method, class and process; namedtuple does the same for __new__.
For the ~50 classes a small command defines, that is a fifth of all its instructions. The command line
(cli/entry.py) has both modules compile through this cache: code objects keyed by their exact source
text and mode, compiled as exec() would compile them there (no inherited __future__ flags), kept with
marshal in $XDG_CACHE_HOME/imagetool/generated-code-<interpreter tag>-<bytecode magic> (each code object
marshalled on its own, loaded only when asked for). The same text gives the same code,
so nothing changes but the time. A cache file that is not this user's own, or unreadable, is ignored;
what a process compiled anew is merged into the file at exit (write to a temporary name, then rename).
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path
from typing import Any

from imagetool.cachedir import user_cache

#: a file past this many entries (sources of older versions piling up) starts over
MAX_ENTRIES = 4000

#: (mode, source) -> its code, or the code's marshal bytes until first asked for (a command uses few of them)
_codes: dict[tuple[str, str], Any] = {}
#: what this process compiled: (mode, source) -> marshal bytes of the code
_new: dict[tuple[str, str], bytes] = {}
_installed = [False]


def cache_path() -> Path:
    from importlib.util import MAGIC_NUMBER  # bytecode can change within a version's tag (a release candidate)

    return user_cache(f"generated-code-{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}")


def _read(path: Path) -> dict[tuple[str, str], Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return {}
        with os.fdopen(fd, "rb", closefd=False) as f:
            codes = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    finally:
        os.close(fd)
    return codes if isinstance(codes, dict) else {}


def _compiled(source: str, mode: str) -> Any:
    key = (mode, source)
    code = _codes.get(key)
    if isinstance(code, bytes):
        try:
            code = _codes[key] = marshal.loads(code)
        except (ValueError, EOFError, TypeError):
            code = None
    if code is None:
        code = _codes[key] = compile(source, "<string>", mode, dont_inherit=True)
        _new[key] = marshal.dumps(code)
    return code


def _exec(source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> None:
    if isinstance(source, str):
        source = _compiled(source, "exec")
    exec(source, globals, locals)


def _eval(source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> Any:
    if isinstance(source, str):
        source = _compiled(source, "eval")
    return eval(source, globals, locals)


def install() -> None:
    """dataclasses and collections compile through the cache from now on; the file is updated at exit."""
    if _installed[0] or sys.implementation.cache_tag is None:
        return
    _installed[0] = True
    import atexit
    import collections
    import dataclasses

    try:
        _codes.update(_read(cache_path()))
    except RuntimeError:  # no home directory to keep a cache in: compile as ever
        return
    dataclasses.exec = _exec  # type: ignore[attr-defined]  # the module's global shadows the builtin
    collections.eval = _eval  # type: ignore[attr-defined]
    atexit.register(save)


def save() -> None:
    """Merge what this process compiled into the file; failing to write costs only the next command's time."""
    if not _new:
        return
    try:
        path = cache_path()
    except RuntimeError:
        return
    codes = _read(path)
    if len(codes) + len(_new) > MAX_ENTRIES:
        codes = {}
    codes.update(_new)
    _new.clear()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(codes))
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
