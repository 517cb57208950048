"""`sync --src yaml` with malformed and unusual files, beside what skopeo 1.9 says and does with the same files.

No registry is needed: every file names its tags, and --dry-run copies nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.sync.test_sync_config import MALFORMED

#: where skopeo does otherwise, and what it does
SKOPEO_DIFFERS = {"a regex that does not compile": "skopeo logs the error, skips the repository and exits 0"}
_SKOPEO_LINE = re.compile(r'msg="(?P<msg>Would have [^"]*)"(?: from="(?P<from>[^"]*)" to="(?P<to>[^"]*)")?')
_OUR_LINE = re.compile(r'^(?P<msg>Would have .*?)(?: from="(?P<from>[^"]*)" to="(?P<to>[^"]*)")?$')


def _sync(tool: str, path: Path, dest: Path):  # type: ignore[no-untyped-def]
    argv = ["sync", "--dry-run", "--src", "yaml", "--dest", "dir", str(path), str(dest)]
    return imagetool(*argv, check=False) if tool == "imagetool" else skopeo(*argv, check=False)


def _lines(text: str, pattern: re.Pattern[str]) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(pattern.search, text.splitlines()) if m]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_one_line_and_exit_1(case: str, tmp_path: Path) -> None:
    text, line, words = MALFORMED[case]
    path = tmp_path / "sync.yml"
    path.write_text(text)
    ours = _sync("imagetool", path, tmp_path / "out")
    message = one_line_error(ours)
    assert ours.returncode == 1 and "internal error" not in ours.stderr
    assert message.startswith("imagetool: ") and words in message, message
    assert not (tmp_path / "out").exists()
    theirs = _sync("skopeo", path, tmp_path / "skopeo-out")
    if case in SKOPEO_DIFFERS:
        assert theirs.returncode == 0 and "level=error" in theirs.stderr, theirs.stderr
        return
    assert theirs.returncode == 1, theirs.stderr
    said = re.search(r"line (\d+): cannot unmarshal", theirs.stderr)
    if said:  # a type error: both name the same line
        assert int(said.group(1)) == line, theirs.stderr


#: files both accept: what each would copy must be the same
ACCEPTED = {
    "unknown keys ignored": "127.0.0.1:1:\n  imagez:\n    x: [a]\n  images:\n    busybox: [latest]\n",
    "an empty registry": "127.0.0.1:1:\n127.0.0.1:2:\n  images:\n    a/b: [v1]\n",
    "scalars as their text": "127.0.0.1:1:\n  images:\n    busybox: [1, 2.5, true, 1.10, 1.0]\n",
    "a number as a repository": "127.0.0.1:1:\n  images:\n    5: [latest]\n",
    "unknown credentials keys": "127.0.0.1:1:\n  credentials: {user: x}\n  tls-verify:\n  images:\n    a: [v]\n",
    "a digest": "127.0.0.1:1:\n  images:\n    a: ['sha256:" + "0" * 64 + "']\n",
    "an empty file": "",
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_an_accepted_file_names_what_skopeo_names(case: str, tmp_path: Path) -> None:
    path = tmp_path / "sync.yml"
    path.write_text(ACCEPTED[case])
    ours = _sync("imagetool", path, tmp_path / "out")
    assert ours.returncode == 0, ours.stderr
    theirs = _sync("skopeo", path, tmp_path / "skopeo-out")
    assert theirs.returncode == 0, theirs.stderr
    found = [(msg, src, dst and dst.replace(str(tmp_path / "out"), "OUT"))
             for msg, src, dst in _lines(ours.stderr, _OUR_LINE)]
    assert found == [(msg, src, dst and dst.replace(str(tmp_path / "skopeo-out"), "OUT"))
                     for msg, src, dst in _lines(theirs.stderr, _SKOPEO_LINE)]
    assert found[-1][0].startswith("Would have synced")
