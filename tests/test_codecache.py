"""Generated dataclass and namedtuple methods compiled once and kept (imagetool/codecache.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from importlib.util import MAGIC_NUMBER

import pytest

from imagetool import codecache
from tests.lib.cli import imagetool
from tests.lib.images import random_image

#: classes of every kind the cache sees, and what they do: the same with and without it
PROBE = """
import dataclasses, collections, sys, typing
if sys.argv[1] == "cached":
    from imagetool import codecache
    codecache.install()

@dataclasses.dataclass(frozen=True, order=True)
class Frozen:
    a: int
    b: "list[str]" = dataclasses.field(default_factory=list)
    c: typing.ClassVar[int] = 3

@dataclasses.dataclass(slots=True, kw_only=True)
class Slotted:
    x: str = "x"

Point = collections.namedtuple("Point", "x y", defaults=[0])
f = Frozen(1, ["z"])
print(repr(f), f == Frozen(1, ["z"]), f < Frozen(2), hash(Frozen(1, ())) == hash(Frozen(1, ())))
print(Frozen.__init__.__annotations__, Frozen.__init__.__code__.co_varnames, Frozen.__init__.__defaults__)
try:
    f.a = 2
except dataclasses.FrozenInstanceError as err:
    print("frozen", err)
print(repr(Slotted(x="y")), Slotted.__slots__, Point(1), Point._fields, Point.__new__.__defaults__)
"""


CACHE_NAME = f"generated-code-{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}"


def run_probe(mode: str, cache: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_classes_made_through_the_cache_behave_as_without_it(tmp_path: Path) -> None:
    plain = run_probe("plain", tmp_path)
    assert "frozen cannot assign to field 'a'" in plain
    assert run_probe("cached", tmp_path) == plain  # compiled anew, then saved
    file = tmp_path / "imagetool" / CACHE_NAME
    assert file.stat().st_size > 0
    assert run_probe("cached", tmp_path) == plain  # read from the file


def test_a_second_command_compiles_nothing_new(tmp_path: Path) -> None:
    random_image(tmp_path / "img", "v1", n_layers=1, size=1000)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = imagetool("inspect", f"oci:{tmp_path}/img:v1", env=env).stdout
    file = tmp_path / "cache" / "imagetool" / CACHE_NAME
    before = file.stat()
    assert before.st_mode & 0o077 == 0
    assert imagetool("inspect", f"oci:{tmp_path}/img:v1", env=env).stdout == first
    after = file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_a_damaged_or_foreign_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    random_image(tmp_path / "img", "v1", n_layers=1, size=1000)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    file = codecache.cache_path()
    file.parent.mkdir(parents=True)
    file.write_bytes(b"\xff not marshal")
    assert codecache._read(file) == {}
    imagetool("inspect", f"oci:{tmp_path}/img:v1")  # works, and writes a good file over the bad one
    assert len(codecache._read(file)) > 10
    os.chown(file, 12345, 12345)
    assert codecache._read(file) == {}
