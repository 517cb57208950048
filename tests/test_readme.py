"""The library API as the README shows it: every example runs, type-checks, and the package stays cheap to import."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import imagetool
from imagetool.digest import Digest
from imagetool.reference import parse as parse_reference
from imagetool.store import images
from imagetool.store.layout import LayoutStore
from tests.lib.images import busybox_image

ROOT = Path(__file__).resolve().parent.parent


def _examples() -> list[str]:
    """The python blocks of the README's "Python API" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Python API\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)


def _workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory with ./busybox, a store of its own and a user policy that accepts the test's images."""
    busybox_image(tmp_path / "busybox", "latest")
    home = tmp_path / "home"
    (home / ".config" / "containers").mkdir(parents=True)
    (home / ".config" / "containers" / "policy.json").write_text(
        json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = {**os.environ, "HOME": str(home), "IMAGETOOL_STORE": str(tmp_path / "store")}
    env.pop("XDG_CONFIG_HOME", None)
    return tmp_path, env


def test_readme_has_an_example_per_entry_point() -> None:
    found = "\n".join(_examples())
    for name in ("copy_image", "inspect_image", "pull_image", "build_image", "run_image"):
        assert re.search(rf"\b{name}\(", found), f"no README example calls {name}"


def test_readme_examples_run(tmp_path: Path) -> None:
    cwd, env = _workdir(tmp_path)
    copy, inspect, pull, build, run = _examples()

    def example(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    copied = re.fullmatch(r"copied (sha256:[0-9a-f]{64})\n", example(copy))
    assert copied, "the copy example printed no digest"
    store = LayoutStore.open(tmp_path / "store")
    entry = images.resolve(store, parse_reference("localhost/busybox:1"))
    assert str(entry.digest) == copied[1]
    manifest = json.loads(store.read_blob(entry.digest))
    assert all(layer["mediaType"].endswith("+zstd") for layer in manifest["layers"])  # CopyOptions applied
    config = json.loads(store.read_blob(Digest.parse(manifest["config"]["digest"])))

    assert example(inspect) == f"{copied[1]} linux {config['architecture']} 1 layer(s)\n"

    pulled = re.fullmatch(r"pulled (sha256:[0-9a-f]{64})\n", example(pull))
    assert pulled, "the pull example printed no image ID"
    latest = images.resolve(store, parse_reference("localhost/busybox:latest"))
    assert str(images.image_id(store, latest)) == pulled[1]

    built = re.search(r"^built (sha256:[0-9a-f]{64})$", example(build), re.M)
    assert built, "the build example printed no image ID"
    hello = images.resolve(store, parse_reference("localhost/hello:1"))
    assert str(images.image_id(store, hello)) == built[1]

    assert example(run) == "hello\nexit status 0\n"  # the RUN step's file, read by the container
    containers = tmp_path / "store" / "containers"
    assert not containers.exists() or not any(containers.iterdir()), "remove=True left the container behind"


def test_readme_examples_type_check(tmp_path: Path) -> None:
    """mypy --strict accepts the examples as a user's code (py.typed makes it read the package), and the
    types are real: a wrong argument is reported."""
    files = []
    for n, code in enumerate(_examples()):
        files.append(tmp_path / f"example_{n}.py")
        files[-1].write_text(code)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from imagetool import copy_image, parse_image_name\n\n"
                     "copy_image(parse_image_name('oci:a'), 'localhost/b:1')\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", "",
                           *map(str, files), str(wrong)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("wrong.py:3:") and "[arg-type]" in errors[0], done.stdout


def test_import_loads_nothing_else() -> None:
    """The command line imports imagetool first: the API's modules load only when a name is used."""
    code = ("import sys, imagetool\n"
            "print(sorted(m for m in sys.modules if m.startswith('imagetool')))\n"
            "imagetool.CopyOptions\n"
            "print('imagetool.copy.options' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout == "['imagetool']\nTrue\n"


def test_help_lists_the_api() -> None:
    code = "import imagetool, pydoc\nprint(pydoc.render_doc(imagetool, renderer=pydoc.plaintext))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    shown = set(re.findall(r"^    (?:class )?(\w+)", done.stdout, re.M))
    missing = [name for name in imagetool.__all__ if name not in shown and name != "__version__"]
    assert not missing, f"help(imagetool) does not show {missing}"


def test_exports_are_documented_and_their_hints_resolve() -> None:
    """Each export says what it is for, and typing.get_type_hints works on it (no TYPE_CHECKING-only names)."""
    for name in imagetool.__all__:
        value = getattr(imagetool, name)
        if not (isinstance(value, type) or callable(value)) or name == "ACCEPT_ANYTHING":
            continue
        doc = value.__doc__ or ""
        assert doc and not doc.startswith(f"{value.__name__}("), f"{name} has no docstring"
        typing.get_type_hints(value)
    assert imagetool.build_image.__module__ == "imagetool.build.executor"


def test_all_lists_the_lazy_exports() -> None:
    assert imagetool.__all__ == ["__version__", *imagetool._LAZY]


def test_unknown_names_are_attribute_errors() -> None:
    try:
        imagetool.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("imagetool.no_such_name did not raise AttributeError")


def test_py_typed_is_installed(tmp_path: Path) -> None:
    """What setuptools installs from a fresh checkout (build_py, which a wheel or an install runs) carries py.typed."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "imagetool", checkout / "imagetool", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                    "--build-lib", str(tmp_path / "lib")], cwd=checkout, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "lib" / "imagetool" / "__init__.py").is_file()
    assert (tmp_path / "lib" / "imagetool" / "py.typed").is_file(), "py.typed is not package data"
