"""Under the name `skopeo` (a link to the imagetool command) the words scripts read are skopeo's: the version
line, and a fatal error as one logrus line with msg quoted as Go quotes it. Under its own name nothing changes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, skopeo
from tests.lib.images import random_image, two_platform_index

LOGRUS_FATAL = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)" level=fatal msg="(.*)"$')


@pytest.fixture()
def as_skopeo(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run imagetool through a link named skopeo, as a system that installs it in skopeo's place would."""
    command = Path(sys.executable).parent / "imagetool"
    assert command.is_file(), "the imagetool console script is installed in the virtualenv"
    link = tmp_path / "bin" / "skopeo"
    link.parent.mkdir()
    link.symlink_to(command)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(link), *args], capture_output=True, text=True, timeout=300)
    return run


def test_version_line(as_skopeo) -> None:  # type: ignore[no-untyped-def]
    ours = as_skopeo("--version").stdout.strip()
    theirs = skopeo("--version").stdout.strip()
    assert re.fullmatch(r"skopeo version [0-9.]+ \(imagetool [0-9.]+\)", ours), ours
    assert ours.split()[:3] == theirs.split()[:3]  # the skopeo release whose command line we follow
    assert imagetool("--version").stdout.startswith("imagetool, version ")


def test_a_fatal_error_is_a_logrus_line(as_skopeo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    random_image(tmp_path / "lay", "v1", n_layers=1)
    for argv, code in ((["inspect", f"oci:{tmp_path}/lay:nope"], 2), (["inspect", f"oci:{tmp_path}/none:x"], 1),
                       (["inspect", "--format", "{{.Nope}}", f"oci:{tmp_path}/lay:v1"], 1)):
        ours = as_skopeo(*argv)
        theirs = skopeo(*argv, check=False)
        assert ours.returncode == code, ours.stderr
        [line] = ours.stderr.splitlines()
        assert LOGRUS_FATAL.match(line), line
        assert LOGRUS_FATAL.match(theirs.stderr.splitlines()[-1])
        plain = imagetool(*argv, check=False)
        assert plain.returncode == code and plain.stderr.startswith("imagetool: ")
        # the same words, quoted: msg="..." unquotes (as Go strings) to what imagetool says under its own name
        assert json.loads('"' + LOGRUS_FATAL.match(line).group(2) + '"') == plain.stderr.strip()[len("imagetool: "):]


def test_quotes_inside_msg_are_escaped_as_skopeo_escapes_them(as_skopeo, tmp_path: Path) -> None:  # type: ignore
    """What skopeo's own system test matches for an index without this platform: `architecture \\"s390x\\"`."""
    two_platform_index(tmp_path / "idx")
    argv = ["--override-arch", "s390x", "inspect", f"oci:{tmp_path}/idx:multi"]
    proc = as_skopeo(*argv)
    [line] = proc.stderr.splitlines()
    assert proc.returncode == 1 and LOGRUS_FATAL.match(line), line
    words = "parsing manifest for image: choosing image instance: no image found in image index for architecture "
    assert words + '\\"s390x\\", variant \\"\\", OS \\"linux\\"' in line
    assert words in skopeo(*argv, check=False).stderr  # skopeo 1.9 does not quote the architecture yet
