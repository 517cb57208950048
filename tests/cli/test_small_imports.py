"""Small commands load only what they use: the modules each imports, read from `python -X importtime`.

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
