"""The files a container's name and network are read from: /etc/hosts, /etc/hostname, /etc/resolv.conf.

They are written per run into the bundle and bind-mounted, never into the rootfs, so they
leave no trace in a committed layer. The flags follow docker and podman: --add-host lines,
--dns/--dns-search/--dns-option replacing the host's own settings, --no-hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ETC_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


@dataclass
class EtcSettings:
    #: (name, address) lines added to /etc/hosts (--add-host)
    hosts: list[tuple[str, str]] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    #: leave the image's own /etc/hosts alone (--no-hosts)
    no_hosts: bool = False

    def files(self, hostname: str, host_network: bool, resolver: str | None = None) -> dict[str, str]:
        """Destination -> content of the files to bind in; `resolver` is the network's DNS forwarder."""
        out = {"/etc/hostname": hostname + "\n", "/etc/resolv.conf": self.resolv_conf(resolver)}
        if not self.no_hosts:
            out["/etc/hosts"] = hosts_file(hostname, host_network, self.hosts)
        return out

    def resolv_conf(self, resolver: str | None = None) -> str:
        """The host's resolv.conf, its nameservers, search list or options replaced where flags give them.
        A `resolver` (a private network's forwarder) comes first, and the host's loopback nameservers,
        out of the container's reach, go (podman does the same for slirp4netns)."""
        lines = read_host_file("/etc/resolv.conf").splitlines()
        if resolver and not self.dns:
            lines = [f"nameserver {resolver}"] + [line for line in lines if not _loopback_nameserver(line)]
        for keys, values in ((("nameserver",), self.dns), (("search", "domain"), self.dns_search),
                             (("options",), self.dns_options)):
            if values:
                lines = [line for line in lines if not line.split()[:1] or line.split()[0] not in keys]
                lines += [f"nameserver {v}" for v in values] if keys[0] == "nameserver" else \
                    [f"{keys[0]} {' '.join(values)}"]
        return "".join(line + "\n" for line in lines)


def hosts_file(hostname: str, host_network: bool, extra: list[tuple[str, str]] | tuple[()] = ()) -> str:
    """A private network gets localhost and its own name; the host's network gets the host's file, as in
    docker, with the container's name added when the file does not know it. `extra` lines come last."""
    if not host_network:
        text = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    else:
        text = read_host_file("/etc/hosts")
        if text and not text.endswith("\n"):
            text += "\n"
        names = {name for line in text.splitlines() for name in line.partition("#")[0].split()[1:]}
        if hostname not in names:
            text += f"127.0.1.1\t{hostname}\n"
    return text + "".join(f"{address}\t{name}\n" for name, address in extra)


def _loopback_nameserver(line: str) -> bool:
    words = line.split()
    return words[:1] == ["nameserver"] and len(words) > 1 and (words[1].startswith("127.") or words[1] == "::1")


def read_host_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
