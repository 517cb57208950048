"""Small commands load only what they use: the modules each imports, read from `python -X importtime`, and the
deferred stdlib modules (imagetool/deferred.py) each leaves unloaded.

A start-up near the interpreter's floor (bench/small_bench.py) is lost one eager import at a time; these
lists name the heavy modules (HTTP stacks, crypto, compressors, the build and the runtime) each small
command must not load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lib.cli import imagetool
from tests.lib.images import random_image
from tests.lib.registry import Registry

#: never needed by the small commands below
HEAVY = ("requests", "urllib3", "cryptography", "gnupg", "zstandard", "isal", "yaml", "nacl", "fastcrc",
         "dockerfile_parse", "imagetool.build", "imagetool.runtime", "imagetool.pull", "imagetool.layer.unpack",
         "imagetool.registry.upload", "imagetool.signature.sigstore", "imagetool.signature.simple",
         "imagetool.signature.signers", "subprocess", "tarfile")
#: what a command that reaches no registry does not load either
NETWORK = ("ssl", "http.client", "socket", "email", "imagetool.registry")


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "imagetool", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "imagetool.cli" in names  # the output was read
    return names


#: runs the command line as its console script does and tells, at exit, which deferred modules were loaded after
#: all, and which of our dataclasses got the docstring dataclasses writes from inspect.signature (180 us each)
_REPORTING = """
import atexit, sys
from imagetool import deferred
def report():
    loaded = sorted(n for n in deferred.DEFERRED if n in sys.modules and not deferred.is_deferred(n))
    import dataclasses
    classes = [(n, v) for n, m in list(sys.modules.items()) if n.startswith("imagetool") and m is not None
               for v in list(vars(m).values()) if type(v) is type]  # isinstance() would load a deferred module
    print("undocumented:", *sorted(f"{n}.{v.__qualname__}" for n, v in classes
                                   if dataclasses.is_dataclass(v) and v.__module__ == n
                                   and (v.__dict__.get("__doc__") or "").startswith(v.__name__ + "(")),
          file=sys.stderr)
    print("deferred-loaded:", *loaded, file=sys.stderr)
atexit.register(report)
sys.argv[0] = "imagetool"
from imagetool.__main__ import main
main()
"""


def deferred_loaded(*args: str) -> list[str]:
    """The deferred modules the command loaded (asserting that it gave no dataclass a generated docstring)."""
    proc = subprocess.run([sys.executable, "-c", _REPORTING, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    undocumented, line = proc.stderr.splitlines()[-2:]
    assert line.startswith("deferred-loaded:") and undocumented.startswith("undocumented:"), proc.stderr
    assert undocumented.split()[1:] == []
    return line.split()[1:]


def loaded(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


def test_help_loads_click_and_the_root_command_only() -> None:
    names = imported("--help")
    assert loaded(names, HEAVY + NETWORK + ("imagetool.transports", "imagetool.errors", "shutil", "json")) == []
    assert not any(n.startswith("imagetool.cli.") and n not in ("imagetool.cli.entry", "imagetool.cli.personality")
                   for n in names)  # no subcommand module


def test_inspect_of_a_layout_loads_no_network_or_heavy_module(tmp_path: Path) -> None:
    random_image(tmp_path / "img", "v1", n_layers=1, size=1000)
    names = imported("inspect", f"oci:{tmp_path}/img:v1")
    assert loaded(names, HEAVY + NETWORK + ("concurrent.futures", "imagetool.copy.blob")) == []


@pytest.mark.usefixtures("registry_env")
def test_inspect_and_a_no_op_copy_against_a_registry_load_no_heavy_module(plain_registry: Registry,
                                                                        tmp_path: Path) -> None:
    random_image(tmp_path / "img", "v1", n_layers=1, size=1000)
    ref = plain_registry.ref("small-imports/img:v1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/img:v1", ref)
    names = imported("inspect", "--tls-verify=false", ref)
    assert loaded(names, HEAVY + ("concurrent.futures", "imagetool.copy.blob", "imagetool.signature")) == []
    names = imported("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", ref, ref)
    # every blob is known to be there: no thread pool either (copy/single.py)
    assert loaded(names, HEAVY + ("concurrent.futures", "logging")) == []


@pytest.mark.usefixtures("registry_env")
def test_small_commands_leave_the_deferred_modules_unloaded(plain_registry: Registry, tmp_path: Path) -> None:
    """ssl (plain HTTP), selectors, tokenize/linecache (click's inspect), random and calendar (email.utils),
    ipaddress (urllib.parse), hashlib, email's header encoders, ...: imported by what the commands use, run by
    none of them."""
    random_image(tmp_path / "img", "v1", n_layers=2, size=1000)
    ref = plain_registry.ref("small-imports/deferred:v1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/img:v1", ref)
    flags = ("--src-tls-verify=false", "--dest-tls-verify=false")
    assert deferred_loaded("--help") == []
    assert deferred_loaded("inspect", "--tls-verify=false", ref) == []
    assert deferred_loaded("copy", "-q", *flags, ref, ref) == []
    # the mount copy's thread pool tunes malloc through ctypes, which uses struct
    assert deferred_loaded("copy", "-q", *flags, ref, plain_registry.ref("small-imports/mounted:v1")) == ["struct"]
    # the mount copy wrote its blob locations without the tempfile module (and its random); no blob moved, so
    # no compressor loaded either
    names = imported("copy", "-q", *flags, ref, plain_registry.ref("small-imports/mounted2:v1"))
    assert loaded(names, HEAVY + ("tempfile", "shutil", "imagetool.compression", "imagetool.layer", "zlib")) == []
    names = imported("inspect", "--tls-verify=false", ref)
    assert loaded(names, ("imagetool.gotemplate", "imagetool.transports.envelopes")) == []
    assert (Path(os.environ["XDG_CACHE_HOME"]) / "imagetool" / "blob-locations.json").is_file()
