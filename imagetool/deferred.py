"""Deferred standard-library modules, for the command line's own process only (imagetool/__main__.py).

click, http.client and the stdlib import some modules at their top that a small command never uses:
ssl (http.client's HTTPSConnection, a plain-HTTP registry never needs it), selectors (socket.sendfile),
tokenize and linecache (inspect), ipaddress (urllib.parse), random and calendar (email.utils), copy
(dataclasses), fnmatch and ntpath (pathlib, Windows paths), email's header encoding (http.client's
parsing of ASCII headers never calls it), struct (base64's Ascii85), traceback (logging's, until an error
is logged). A module named in DEFERRED is created on
import but its code runs on first attribute access (Mercurial's demandimport does the same,
importlib.util.LazyLoader is the mechanism): an import that is never used costs nothing, one that is used
costs what it always did, one step later. `from X import Y` simply loads X.

Only modules whose importers touch nothing of them at import time belong here (a deferred module touched
at once saves nothing): tests/cli/test_small_imports.py checks that the small commands leave every one of
them unloaded, tests/test_deferred.py that a deferred module loads correctly on first use.

Differences from importlib.util.LazyLoader as Python 3.11 has it, both needed here:
- `__spec__` is answered without loading: the interpreter reads it on every later `import X` (is X still
  initializing?), which would otherwise load a deferred module at its second import statement;
- the load holds a lock (as Python 3.12's LazyLoader does): a thread touching the module while another is
  loading it waits instead of seeing a half-filled module.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from _thread import RLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.abc import Loader

#: stdlib modules imported at the top of click, http.client, socket, email, urllib.parse, inspect, dataclasses
#: (copy), pathlib (fnmatch, ntpath), base64 (struct) or logging (traceback, the thread pool's), and hashlib at
#: the top of imagetool.digest, used by none of the small commands
#: (--help, inspect, a no-op or mount copy: their manifests are hashed by digest._one_shot)
DEFERRED = frozenset({"ssl", "selectors", "tokenize", "token", "linecache", "ipaddress", "random", "calendar",
                      "hashlib", "copy", "fnmatch", "ntpath", "struct", "traceback",
                      # http.client's response headers are ASCII: email's encoded-word machinery stays unused
                      "email.header", "email.quoprimime", "email.base64mime", "email.errors"})


class _Deferred(types.ModuleType):
    """A module whose code has not run yet: the first attribute access (other than __spec__) runs it."""

    def __getattribute__(self, attr: str) -> object:
        get = types.ModuleType.__getattribute__
        if attr == "__spec__":
            return get(self, attr)
        spec = get(self, "__spec__")
        state = spec.loader_state
        with state["lock"]:
            if type(self) is _Deferred:
                if state["loading"]:  # the module's own load (the loader reads __dict__, __name__)
                    return get(self, attr)
                state["loading"] = True
                _load(self, spec, state["dict"])
        return getattr(self, attr)

    def __delattr__(self, attr: str) -> None:
        getattr(self, attr)  # loads the module (and raises if there is no such attribute)
        delattr(self, attr)


def _load(module: types.ModuleType, spec: importlib.machinery.ModuleSpec, then: dict[str, object]) -> None:
    """Run the module's code; attributes set on it while it was deferred (a submodule, say) are kept, as an
    eager import would have them (set after the module's own code ran)."""
    now = types.ModuleType.__getattribute__(module, "__dict__")
    updated = {key: value for key, value in now.items() if key not in then or then[key] is not value}
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        if sys.modules.get(spec.name) is module:
            del sys.modules[spec.name]  # as a failed import leaves it: the next import tries again
        raise
    finally:
        object.__setattr__(module, "__class__", types.ModuleType)
    now.update(updated)


class _Loader(importlib.util.LazyLoader):
    """LazyLoader with its module class replaced by _Deferred."""

    loader: Loader  # the module's own loader (LazyLoader.__init__ keeps it)

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = self.loader
        module.__loader__ = self.loader
        spec.loader_state = {"dict": dict(module.__dict__), "lock": RLock(), "loading": False}
        module.__class__ = _Deferred


class _Finder:
    """On sys.meta_path before the path finder: a deferred module's spec, found by the finders after it,
    gets _Loader (Python modules only, from source, bytecode or frozen: an extension module's creation is its
    load)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None) \
            -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        machinery = importlib.machinery
        loader: object = spec.loader  # FrozenImporter is used as a class, not an instance
        if spec.loader is None or not (isinstance(loader, machinery.SourceFileLoader | machinery.SourcelessFileLoader)
                                       or loader is machinery.FrozenImporter):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec

    def invalidate_caches(self) -> None:
        pass


def install(names: frozenset[str] = DEFERRED) -> None:
    """Defer `names` (those not imported yet) in this process, from now on."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(frozenset(n for n in names if n not in sys.modules)))


def is_deferred(name: str) -> bool:
    """Whether module `name` was imported deferred and its code has not run yet."""
    return type(sys.modules.get(name)) is _Deferred
