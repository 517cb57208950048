"""The resource flags `run` and `build` share (podman's and buildah's names) -> the spec's linux.resources."""

from __future__ import annotations

from typing import Any, Callable

import click

from imagetool.cli.options import _stacked

F = Callable[..., Any]


def resource_options(what: str = "the container") -> Callable[[F], F]:
    """-m/--memory, --memory-swap, --pids-limit, --cpus, -c/--cpu-shares, --cpu-period, --cpu-quota."""
    from imagetool.runtime.resources import DEFAULT_PIDS_LIMIT

    return _stacked([
        click.option("-m", "--memory", "memory", metavar="SIZE",
                     help=f"Memory limit of {what} (512m, 2g; at least 6m)."),
        click.option("--memory-swap", "memory_swap", metavar="SIZE",
                     help="Memory plus swap limit (-1: unlimited swap; default twice --memory)."),
        click.option("--pids-limit", "pids_limit", type=int, default=DEFAULT_PIDS_LIMIT, show_default=True,
                     help=f"Most processes {what} may have at once (0 or -1: no limit)."),
        click.option("--cpus", "cpus", metavar="N", help="CPUs to use at most (1.5: a CFS quota of 150ms per 100ms)."),
        click.option("-c", "--cpu-shares", "cpu_shares", type=int, help="CPU shares (a relative weight)."),
        click.option("--cpu-period", "cpu_period", type=int, metavar="MICROSECONDS", help="CFS period."),
        click.option("--cpu-quota", "cpu_quota", type=int, metavar="MICROSECONDS", help="CFS quota per period."),
    ])


def resource_limits(flags: dict[str, Any]) -> dict[str, Any]:
    """The linux.resources resource_options() asked for (their keys are taken out of `flags`)."""
    from imagetool.runtime.resources import Limits

    return Limits(memory=flags.pop("memory"), memory_swap=flags.pop("memory_swap"),
                  pids_limit=flags.pop("pids_limit"), cpus=flags.pop("cpus"), cpu_shares=flags.pop("cpu_shares"),
                  cpu_period=flags.pop("cpu_period"), cpu_quota=flags.pop("cpu_quota")).spec()
