"""The runc executor runs the same spec: every probe gives the same answer under both executors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lib.cli import imagetool

PROBES = [
    ([], "echo $$; hostname; id; pwd; ls /; cat /etc/hosts"),
    ([], "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; ulimit -n"),
    ([], "cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; echo x > /proc/sysrq-trigger || echo denied"),
    (["--user", "nobody"], "id; echo $HOME; grep CapEff /proc/self/status"),
    (["--network", "none"], "ls /sys/class/net"),
    (["-w", "/tmp", "-e", "A=b", "--hostname", "h1"], "pwd; echo $A; hostname; env | sort"),
    ([], "exit 23"),
    ([], "no-such-command"),
]


@pytest.mark.parametrize("flags,script", PROBES)
def test_runc_and_embedded_agree(busybox: str, flags: list[str], script: str, tmp_path: Path) -> None:
    results = {}
    for runtime in ("embedded", "runc"):
        proc = imagetool("run", "--rm", "--runtime", runtime, *flags, busybox, "sh", "-c", script, check=False)
        results[runtime] = (proc.returncode, proc.stdout)
    assert results["embedded"] == results["runc"]


def test_volumes_under_runc(busybox: str, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("shared")
    out = imagetool("run", "--rm", "--runtime", "runc", "-v", f"{tmp_path}:/v:ro", busybox, "sh", "-c",
                    "cat /v/in; touch /v/new 2>/dev/null || echo ro").stdout
    assert out == "sharedro\n"
    assert not (tmp_path / "new").exists()
