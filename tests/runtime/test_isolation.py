"""`imagetool run` isolation, run as the real command: namespaces, masks, capabilities, users, cleanup."""

from __future__ import annotations

import os
from pathlib import Path

from imagetool.runtime.linux import CAPABILITIES
from imagetool.runtime.spec import DEFAULT_CAPABILITIES
from tests.lib.cli import imagetool


def sh(image: str, script: str, *flags: str, check: bool = True) -> str:
    return imagetool("run", "--rm", *flags, image, "sh", "-c", script, check=check).stdout


def test_command_is_pid_1_and_sees_only_its_processes(busybox: str) -> None:
    out = sh(busybox, "echo $$; ps -o pid,comm > /tmp/ps; tail -n +2 /tmp/ps").splitlines()
    assert out[0] == "1"
    procs = [line.split() for line in out[1:]]
    # only sh (PID 1) and ps: nothing from the host
    assert sorted(comm for _, comm in procs) == ["ps", "sh"]
    assert ["1", "sh"] in procs
    assert len([p for p in os.listdir("/proc") if p.isdigit()]) > 3


def test_hostname_is_its_own(busybox: str) -> None:
    assert sh(busybox, "hostname").strip() == "container"
    assert sh(busybox, "hostname; cat /etc/hostname", "--hostname", "box1").split() == ["box1", "box1"]
    assert os.uname().nodename != "box1"


def test_host_paths_are_invisible(busybox: str, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    marker.write_text("secret")
    out = sh(busybox, f"ls /; test -e {marker} && echo VISIBLE; test -e /work && echo WORK; echo done")
    assert sorted(out.split()) == sorted(["bin", "dev", "etc", "proc", "root", "sys", "tmp", "done"])


def test_proc_masks_and_read_only_paths(busybox: str) -> None:
    with open("/proc/keys", "rb") as f:
        assert f.read(1)  # the host's has content: the container's must not
    out = sh(busybox, "cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; cat /proc/timer_list | wc -c;"
                      "echo b > /proc/sysrq-trigger && echo SYSRQ-WRITTEN;"
                      "echo 1 > /proc/sys/kernel/ns_last_pid && echo SYSCTL-WRITTEN;"
                      "grep -E ' /proc/sys | /sys ' /proc/mounts")
    lines = out.splitlines()
    assert lines[:3] == ["0", "0", "0"]
    assert "SYSRQ-WRITTEN" not in out and "SYSCTL-WRITTEN" not in out
    mounts = {line.split()[1]: line.split()[3].split(",") for line in lines[3:]}
    assert "ro" in mounts["/proc/sys"] and "ro" in mounts["/sys"]


def _caps(status: str, field: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1], 16)


def test_capabilities_are_dockers_default_set(busybox: str) -> None:
    """Docker's set; the default private network leaves out CAP_NET_RAW (tests/runtime/test_network.py)."""
    status = sh(busybox, "cat /proc/self/status", "--network", "none")
    expected = sum(1 << CAPABILITIES.index(c) for c in DEFAULT_CAPABILITIES)
    assert _caps(status, "CapEff") == expected
    assert _caps(status, "CapBnd") == expected
    private = _caps(sh(busybox, "cat /proc/self/status"), "CapBnd")
    assert private == expected & ~(1 << CAPABILITIES.index("CAP_NET_RAW"))
    assert not _caps(status, "CapEff") & (1 << CAPABILITIES.index("CAP_SYS_ADMIN"))
    assert _caps(status, "NoNewPrivs") == 1
    # without CAP_SYS_ADMIN nothing can be remounted
    out = sh(busybox, "mount -o remount,rw /proc/sys 2>&1; echo rc=$?")
    assert "rc=0" not in out


def test_rm_leaves_nothing_and_changes_do_not_persist(busybox: str, local_store: Path) -> None:
    sh(busybox, "echo data > /etc/added; rm /bin/ls; test -e /etc/added")
    assert sh(busybox, "test -e /etc/added && echo PERSISTED; test -e /bin/ls && echo LS-BACK").split() == \
        ["LS-BACK"]
    containers = local_store / "containers"
    assert not containers.exists() or not any(containers.iterdir())
    # without --rm the container's changes stay in its upperdir
    imagetool("run", "--name", "kept", busybox, "sh", "-c", "echo data > /etc/added")
    assert (containers / "kept" / "upper" / "etc" / "added").read_text() == "data\n"
    second = imagetool("run", "--name", "kept", busybox, "true", check=False)
    assert second.returncode != 0 and "already in use" in second.stderr


def test_network_none_has_only_loopback(busybox: str) -> None:
    out = sh(busybox, "ls /sys/class/net; ip -o link", "--network", "none")
    assert out.split("\n")[0] == "lo"
    assert len([line for line in out.splitlines() if ": " in line]) == 1
    assert "LOOPBACK,UP" in out
    host = sh(busybox, "ls /sys/class/net", "--network", "host").split()
    assert sorted(host) == sorted(os.listdir("/sys/class/net"))


def test_host_network_takes_the_hosts_name_and_hosts_file(busybox: str) -> None:
    hosts = Path("/etc/hosts").read_text()
    out = sh(busybox, "hostname; cat /etc/hosts", "--network", "host")
    name, _, seen = out.partition("\n")
    assert name == os.uname().nodename
    assert seen.startswith(hosts)
    # a name of the user's own is added when the host's file does not know it
    out = sh(busybox, "hostname; wc -l < /etc/hosts; tail -n 1 /etc/hosts", "--network", "host",
             "--hostname", "other-name")
    assert out.split() == ["other-name", str(len(hosts.splitlines()) + 1), "127.0.1.1", "other-name"]
    # --dns... replace the host's settings; --no-hosts keeps the image's own /etc/hosts (none here)
    out = sh(busybox, "cat /etc/resolv.conf; test -e /etc/hosts || echo no-hosts-file", "--dns", "192.0.2.53",
             "--dns", "192.0.2.54", "--dns-search", "example.test", "--dns-option", "ndots:2", "--no-hosts")
    keys = ("nameserver", "search", "domain", "options", "no-hosts-file")
    assert [line for line in out.splitlines() if line.split()[:1] and line.split()[0] in keys] == [
        "nameserver 192.0.2.53", "nameserver 192.0.2.54", "search example.test", "options ndots:2",
        "no-hosts-file"]
    bad = imagetool("run", "--rm", "--dns", "resolver.example", busybox, "true", check=False)
    assert bad.returncode != 0 and "expected an IP address" in bad.stderr
    # a private network keeps a file of its own
    private = sh(busybox, "cat /etc/hosts")
    assert "127.0.1.1\tcontainer" in private and private != hosts


def test_user_nobody_and_user_forms(busybox: str) -> None:
    assert sh(busybox, "id -u; id -g; echo $HOME", "--user", "nobody").split() == \
        ["65534", "65534", "/nonexistent"]
    assert sh(busybox, "id -u; id -g", "--user", "1234").split() == ["1234", "0"]
    assert sh(busybox, "id -u; id -g", "--user", "nobody:root").split() == ["65534", "0"]
    assert sh(busybox, "id -u; id -g; grep CapEff /proc/self/status", "--user", "65534:65534").split()[:2] == \
        ["65534", "65534"]
    bad = imagetool("run", "--rm", "--user", "nosuchuser", busybox, "true", check=False)
    assert bad.returncode == 125
    assert "nosuchuser" in bad.stderr and "Traceback" not in bad.stderr
