"""Deferred stdlib imports of the command line (imagetool/deferred.py): a deferred module loads correctly on
first use, from any thread, and a library importer of imagetool is unaffected.

Each case runs in a fresh interpreter: the modules deferred are ones the test process has loaded long ago.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagetool import deferred

ROOT = Path(__file__).resolve().parent.parent


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_deferred_module_is_imported_unloaded_and_loads_on_first_use() -> None:
    out = python("""
import sys, types
from imagetool import deferred
deferred.install(frozenset({"calendar", "selectors"}))
import calendar
print(type(sys.modules["calendar"]).__name__, "timegm" in types.ModuleType.__getattribute__(calendar, "__dict__"),
      deferred.is_deferred("calendar"))
import calendar as again               # a second import statement does not load it (it reads __spec__ only)
print(deferred.is_deferred("calendar"), again is calendar, calendar.__spec__.name)
print(calendar.timegm((1970, 1, 2, 0, 0, 0)), deferred.is_deferred("calendar"), type(calendar).__name__)
print(calendar.isleap(2024), sorted(n for n in ("calendar", "selectors") if n in sys.modules))
from selectors import DefaultSelector  # a from-import loads the module at once
print(deferred.is_deferred("selectors"), DefaultSelector.__module__)
""")
    assert out.splitlines() == ["_Deferred False True", "True True calendar", "86400 False module",
                                "True ['calendar']", "False selectors"]


def test_a_deferred_package_keeps_the_submodules_imported_while_it_waited() -> None:
    out = python("""
import sys
from imagetool import deferred
deferred.install(frozenset({"email"}))
import email
import email.errors                  # importing a submodule needs the package's __path__: the package loads
print(deferred.is_deferred("email"), email.errors.MessageError.__name__, email.message_from_string is not None)
""")
    assert out.split() == ["False", "MessageError", "True"]


def test_threads_touching_a_deferred_module_at_once_all_see_it_whole() -> None:
    out = python("""
import sys, threading
from imagetool import deferred
deferred.install(frozenset({"calendar"}))
import calendar
start = threading.Barrier(8)
seen = []
def use():
    start.wait()
    seen.append(calendar.monthrange(2024, 2))
threads = [threading.Thread(target=use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(seen), set(seen))
""")
    assert out.split("\n")[0] == "8 {(3, 29)}"


def test_a_module_that_fails_to_load_raises_and_can_be_imported_again(tmp_path: Path) -> None:
    (tmp_path / "flaky_mod.py").write_text("import os\nif not os.path.exists(os.environ['OK']):\n"
                                          "    raise RuntimeError('not yet')\nvalue = 42\n")
    out = python(f"""
import os, sys
sys.path.insert(0, {str(tmp_path)!r})
os.environ["OK"] = {str(tmp_path / "ok")!r}
from imagetool import deferred
deferred.install(frozenset({{"flaky_mod"}}))
import flaky_mod
try:
    flaky_mod.value
except RuntimeError as err:
    print("first:", err, "flaky_mod" in sys.modules)
open(os.environ["OK"], "w").close()
import flaky_mod
print("again:", flaky_mod.value)
""")
    assert out.splitlines() == ["first: not yet False", "again: 42"]


def test_extension_modules_and_modules_already_loaded_are_not_deferred() -> None:
    out = python("""
import sys, json
from imagetool import deferred
deferred.install(frozenset({"json", "_csv", "calendar"}))
import _csv, calendar
print(deferred.is_deferred("json"), deferred.is_deferred("_csv"), deferred.is_deferred("calendar"))
""")
    assert out.split() == ["False", "False", "True"]


def test_a_library_importer_gets_ordinary_modules() -> None:
    out = python("""
import sys
import imagetool
from imagetool.registry import http
from imagetool import deferred
print(type(sys.modules["ssl"]).__name__, any(isinstance(f, deferred._Finder) for f in sys.meta_path))
""")
    assert out.split() == ["module", "False"]


def test_the_deferred_modules_are_pure_python_stdlib_modules() -> None:
    """An extension module cannot be deferred (its creation is its load): each name must be a source or frozen
    module."""
    import importlib.machinery
    import importlib.util

    for name in deferred.DEFERRED:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert (isinstance(spec.loader, importlib.machinery.SourceFileLoader)
                or spec.loader is importlib.machinery.FrozenImporter), name


def test_a_frozen_module_is_deferred_and_loads_whole() -> None:
    """ntpath is frozen into the interpreter: pathlib imports it, Windows paths use it."""
    out = python("""
import sys
from imagetool import deferred
deferred.install(frozenset({"ntpath"}))
import pathlib
print(deferred.is_deferred("ntpath"), pathlib.PurePosixPath("/a/b").name)
print(str(pathlib.PureWindowsPath("c:/x") / "y"), sys.modules["ntpath"].join("a", "b"))
print(deferred.is_deferred("ntpath"), type(sys.modules["ntpath"]).__name__)
""")
    assert out.splitlines() == ["True b", "c:\\x\\y a\\b", "False module"]


def test_deferred_email_submodules_load_when_a_header_needs_them() -> None:
    """http.client parses ASCII headers without email.header and its encoders; a header that is not ASCII, or
    an encoded word, loads them and reads as it always did."""
    code = """
import email, http.client, io
from email.header import decode_header, make_header
plain = http.client.parse_headers(io.BytesIO(b"Content-Type: text/plain\\r\\nX-A: b\\r\\n\\r\\n"))
print(plain["X-A"], plain.get_content_type())
{probe}
latin = http.client.parse_headers(io.BytesIO(b"X-B: caf\\xe9\\r\\n\\r\\n"))
print(repr(str(latin["X-B"])))
m = email.message_from_string("Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?b?w6k=?=\\n\\nbody")
print(str(make_header(decode_header(m["Subject"]))))
"""
    names = frozenset({"email.header", "email.quoprimime", "email.base64mime", "email.errors"})
    deferred_out = python("import sys\nfrom imagetool import deferred\n"
                          f"deferred.install(frozenset({sorted(names)!r}))\n"
                          + code.replace("{probe}", "print(sorted(n for n in deferred.DEFERRED | "
                                                    f"{set(names)!r} if deferred.is_deferred(n)))"))
    plain_out = python(code.replace("{probe}", "print()"))
    lines = deferred_out.splitlines()
    # `from email.header import ...` loaded email.header (which uses errors and quoprimime at once); base64mime
    # waits for an encoded word
    assert lines[1] == "['email.base64mime']", deferred_out
    assert lines[2:] == ["'café'", "caféé"]
    assert lines == plain_out.splitlines()[:1] + lines[1:2] + plain_out.splitlines()[2:]
