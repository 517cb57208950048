"""Docker's, podman's and buildah's resource flags -> the spec's `linux.resources` (what a cgroup enforces).

--memory/-m, --memory-swap, --pids-limit, --cpus, --cpu-shares/-c, --cpu-period and --cpu-quota
become the OCI `memory`, `pids` and `cpu` objects that runc and the embedded executor (runtime/cgroups.py)
both apply. Each parser refuses a malformed value with one ContainerError line naming the flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from imagetool.errors import ContainerError

#: podman's default (containers.conf pids_limit): a fork bomb stops there
DEFAULT_PIDS_LIMIT = 2048
#: docker's and podman's smallest --memory
MIN_MEMORY = 6 * 1024 * 1024
#: the CFS period `--cpus` uses, as docker and podman do
CPU_PERIOD = 100_000

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str, flag: str) -> int:
    """A size as docker reads it: a number with an optional b, k, m, g (binary units; 32m, 1.5g, 512MiB)."""
    found = _SIZE.match(value.strip())
    if not found:
        raise ContainerError(f"{flag} {value!r}: expected a size such as 512m or 2g")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


@dataclass
class Limits:
    """The resource flags as given (None: not given); `spec()` is what goes into linux.resources."""

    memory: str | None = None
    memory_swap: str | None = None
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    cpus: str | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        memory = self._memory()
        if memory:
            out["memory"] = memory
        if self.pids_limit is not None and self.pids_limit > 0:  # 0 or -1: no limit, as in podman
            out["pids"] = {"limit": self.pids_limit}
        cpu = self._cpu()
        if cpu:
            out["cpu"] = cpu
        return out

    def _memory(self) -> dict[str, int]:
        limit = parse_size(self.memory, "--memory") if self.memory else 0
        if limit and limit < MIN_MEMORY:
            raise ContainerError(f"--memory {self.memory!r}: the minimum is 6m")
        if self.memory_swap is None:
            # docker and podman let a container swap as much again as its memory limit
            return {"limit": limit, "swap": 2 * limit} if limit else {}
        if not limit:
            raise ContainerError("--memory-swap needs --memory (the swap limit counts memory plus swap)")
        if self.memory_swap.strip() == "-1":
            return {"limit": limit, "swap": -1}
        swap = parse_size(self.memory_swap, "--memory-swap")
        if swap < limit:
            raise ContainerError(f"--memory-swap {self.memory_swap!r}: must be at least --memory (memory plus swap)")
        return {"limit": limit, "swap": swap}

    def _cpu(self) -> dict[str, int]:
        cpu: dict[str, int] = {}
        if self.cpu_shares:
            if self.cpu_shares < 2:
                raise ContainerError(f"--cpu-shares {self.cpu_shares}: the minimum is 2")
            cpu["shares"] = self.cpu_shares
        if self.cpus:
            if self.cpu_period or self.cpu_quota:
                raise ContainerError("--cpus and --cpu-period/--cpu-quota cannot both be given")
            try:
                amount = float(self.cpus)
            except ValueError as err:
                raise ContainerError(f"--cpus {self.cpus!r}: expected a number of CPUs such as 1.5") from err
            if amount < 0.01:
                raise ContainerError(f"--cpus {self.cpus!r}: the minimum is 0.01")
            cpu.update(quota=int(amount * CPU_PERIOD), period=CPU_PERIOD)
        if self.cpu_period:
            if not 1000 <= self.cpu_period <= 1_000_000:
                raise ContainerError(f"--cpu-period {self.cpu_period}: expected 1000 to 1000000 microseconds")
            cpu["period"] = self.cpu_period
        if self.cpu_quota:
            if self.cpu_quota != -1 and self.cpu_quota < 1000:
                raise ContainerError(f"--cpu-quota {self.cpu_quota}: the minimum is 1000 microseconds")
            cpu.update(quota=self.cpu_quota, period=cpu.get("period", CPU_PERIOD))
        return cpu


def default_resources() -> dict[str, Any]:
    """What a container gets with no resource flags: podman's pids limit."""
    return Limits().spec()
