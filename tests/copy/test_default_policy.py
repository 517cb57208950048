"""Which trust policy applies when none is named: containers/image's order, for the CLI and the library.

The user's $HOME/.config/containers/policy.json first, then /etc/containers/policy.json; neither is
an error, never "accept anything". copy_image() without a policy applies that default; accepting
anything takes an explicit ACCEPT_ANYTHING. The real /etc/containers/policy.json is never touched:
the library tests point SYSTEM_POLICY elsewhere, the CLI tests give the user a policy of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.copy import ACCEPT_ANYTHING, CopyOptions, copy_image
from imagetool.errors import PolicyRejected
from imagetool.signature import policy_eval
from imagetool.transports import parse_image_name
from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image

REJECT = {"default": [{"type": "reject"}]}
ACCEPT = {"default": [{"type": "insecureAcceptAnything"}]}


def _home_with_policy(tmp_path: Path, doc: dict[str, object] | None) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "containers").mkdir(parents=True)
    if doc is not None:
        (home / ".config" / "containers" / "policy.json").write_text(json.dumps(doc))
    return home


@pytest.fixture
def system_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /etc/containers/policy.json (accepting anything, as Debian's does)."""
    path = tmp_path / "etc-policy.json"
    path.write_text(json.dumps(ACCEPT))
    monkeypatch.setattr(policy_eval, "SYSTEM_POLICY", str(path))
    return path


def test_the_users_policy_comes_before_the_systems(tmp_path: Path, system_policy: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home_with_policy(tmp_path, REJECT)
    monkeypatch.setenv("HOME", str(home))
    assert policy_eval.default_policy_path() == str(home / ".config" / "containers" / "policy.json")
    (home / ".config" / "containers" / "policy.json").unlink()
    assert policy_eval.default_policy_path() == str(system_policy)
    system_policy.unlink()
    assert policy_eval.default_policy_path() is None
    with pytest.raises(PolicyRejected) as err:
        policy_eval.PolicyContext.load(None, False)
    assert "no policy.json file found" in str(err.value) and str(system_policy) in str(err.value)


def test_cli_applies_the_users_policy_although_the_system_one_exists(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=3)
    home = _home_with_policy(tmp_path, REJECT)
    proc = imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", check=False,
                     env={"HOME": str(home)})
    assert "rejected" in one_line_error(proc)
    assert not (tmp_path / "dst").exists()
    imagetool("--insecure-policy", "copy", "-q", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1",
              env={"HOME": str(home)})


def test_copy_image_without_a_policy_applies_the_default(tmp_path: Path, system_policy: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=4)
    src, dst = parse_image_name(f"oci:{tmp_path}/src:v1"), parse_image_name(f"oci:{tmp_path}/dst:v1")
    monkeypatch.setenv("HOME", str(_home_with_policy(tmp_path, REJECT)))
    with pytest.raises(PolicyRejected):
        copy_image(src, dst)
    with pytest.raises(PolicyRejected):
        copy_image(src, dst, CopyOptions(policy=None))
    assert not (tmp_path / "dst").exists()
    copy_image(src, dst, CopyOptions(policy=ACCEPT_ANYTHING))  # the caller says so, explicitly
    assert (tmp_path / "dst" / "index.json").exists()


def test_copy_image_fails_when_no_policy_exists(tmp_path: Path, system_policy: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=5)
    monkeypatch.setenv("HOME", str(_home_with_policy(tmp_path, None)))
    system_policy.unlink()
    with pytest.raises(PolicyRejected) as err:
        copy_image(parse_image_name(f"oci:{tmp_path}/src:v1"), parse_image_name(f"oci:{tmp_path}/dst:v1"))
    assert "no policy.json file found" in str(err.value)
    assert not (tmp_path / "dst").exists()
