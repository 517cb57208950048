"""Rootless `--runtime runc`: runc in a user namespace of ours gives the embedded executor's answers."""

from __future__ import annotations

import pytest

from tests.lib.probes import Prober, Way, ways
from tests.runtime.test_runc import PROBES

#: what differs for an unprivileged user: the host network (sysfs bound, not mounted), ids from the ranges
ROOTLESS_PROBES = [
    (["--network", "host"], "ls /sys/class/net | grep -c '^lo$'; grep -c ' /sys ' /proc/mounts"),
    (["--user", "1000:1000"], "id; touch /tmp/f; ls -ln /tmp/f | awk '{print $3, $4}'; ls -ln /dev/pts"),
    ([], "mkdir -p /home/x; chown 123:456 /home/x; ls -lnd /home/x | awk '{print $3, $4}'; cat /proc/self/gid_map"),
]
#: the `run` flags a build takes too (the others have no build equivalent)
BUILD_FLAGS = {"--network", "--cap-add", "--cap-drop", "--ulimit", "--dns", "--dns-search", "--dns-option",
               "--add-host"}


def _rows() -> list[object]:
    rows = []
    for param in ways(executor="runc", rootless=True):
        way = param.values[0]  # type: ignore[attr-defined]
        for n, (flags, script) in enumerate(PROBES + ROOTLESS_PROBES):
            if way.mode == "build" and not {f for f in flags if f.startswith("-")} <= BUILD_FLAGS:
                continue
            rows.append(pytest.param(way, flags, script, id=f"{way.id}-{n}"))
    return rows


@pytest.mark.parametrize("way,flags,script", _rows())
def test_rootless_runc_agrees_with_embedded(prober: Prober, way: Way, flags: list[str], script: str) -> None:
    if way.mode == "build":  # runc copies the two streams apart: one stream keeps their order in the step log
        script = f"exec 2>&1; {script}"
    runc = prober.probe(way, script, flags=tuple(flags))
    embedded = prober.probe(Way("embedded", True, way.mode), script, flags=tuple(flags))
    assert (runc.code, runc.out) == (embedded.code, embedded.out), runc.stderr
    if "exit 23" not in script and "no-such" not in f"{script} {flags}":
        assert runc.code == 0 and runc.out, runc.stderr  # an answer, not two equal failures
