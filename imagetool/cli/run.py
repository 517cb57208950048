"""`imagetool run`: run a command in a new container from an image (pulled into the local store if needed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from imagetool.cli.limits import resource_limits, resource_options
from imagetool.cli.options import etc_options, etc_settings, registry_options
from imagetool.errors import ContainerError, ImagetoolError, NotFound

#: docker's and podman's status when `run` itself fails, before the command starts
EXIT_RUN_FAILED = 125


def _platform(text: str | None) -> Any:
    """--platform as a Platform (None: this machine's)."""
    if not text:
        return None
    from imagetool.descriptor import Platform
    from imagetool.errors import UsageError

    try:
        return Platform.parse(text)
    except ValueError as err:
        raise UsageError(f"--platform: {err}") from err


def _foreign_program(*args: Any) -> None:
    """The builder's check that a foreign image's program is that platform's (loaded only for one)."""
    from imagetool.build.emulation import check_run

    check_run(*args)


def _resolve(ctx: click.Context, image: str, pull: str | None, flags: dict[str, Any],
             platform: Any = None) -> tuple[Any, Any]:
    """(store, descriptor) of IMAGE in the local store, pulled first as the --pull policy says (default: a
    bare name when it is missing, another transport's image every time), `platform`'s instance if given."""
    from imagetool.cli.options import system_context
    from imagetool.errors import NotFound
    from imagetool.store import images
    from imagetool.transports import parse_image_name
    from imagetool.transports.local import LocalReference

    ref = parse_image_name(image)
    bare = ref if isinstance(ref, LocalReference) else None
    sys_ctx = system_context(ctx, **flags)
    if platform is not None:
        import dataclasses

        sys_ctx = dataclasses.replace(sys_ctx, override_os=platform.os, override_arch=platform.architecture,
                                      override_variant=platform.variant or None)
    if bare and bare.named is None:  # an image ID: the store's or nothing
        store = bare.store(sys_ctx, create=True)
        return store, images.resolve(store, None, bare.id_prefix)
    policy = pull or ("missing" if bare else "always")
    if bare and policy != "always":  # found in the store: no registry or copy code to load
        store = bare.store(sys_ctx, create=True)
        try:
            return store, bare.resolve(store)
        except NotFound:
            pass
    source = parse_image_name(f"docker://{bare.named}") if bare else ref
    from imagetool.cli.options import policy_from_flags
    from imagetool.copy import CopyOptions
    from imagetool.pull import pull_image

    try:
        [pulled] = pull_image(source, CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, policy=policy_from_flags(ctx)),
                              policy)
    except ImagetoolError as err:
        if bare and policy != "never":
            raise NotFound(f"{bare.named} is not in the local store, and pulling {source} failed") \
                .citing_cause() from err
        raise
    return pulled.store, pulled.descriptor


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-i", "--interactive", is_flag=True, help="Keep standard input open.")
@click.option("-t", "--tty", is_flag=True, help="Give the command a terminal.")
@click.option("--init", "init", is_flag=True, help="Run a small init as PID 1 that reaps zombies.")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", "env_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Read KEY=VALUE lines (before any -e).")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="SRC:DST[:ro]", help="Bind a host path.")
@click.option("--network", "--net", "network", type=click.Choice(["private", "host", "none"]), default="private",
              show_default=True,
              help="private: own namespace, outbound through slirp4netns, no way to the host's loopback; "
                   "none: loopback only; host: the host's network, services on its 127.0.0.1 included (unsafe).")
@click.option("-u", "--user", metavar="USER[:GROUP]", help="Run as this user (name or uid).")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container.")
@click.option("-h", "--hostname", metavar="NAME", help="The container's host name.")
@etc_options()
@click.option("--tmpfs", "tmpfs", multiple=True, metavar="PATH[:OPTIONS]", help="Mount a tmpfs at PATH.")
@click.option("--cap-add", multiple=True, metavar="CAP", help="Add a capability (or ALL) to the default set.")
@click.option("--cap-drop", multiple=True, metavar="CAP", help="Drop a capability (or ALL) from the default set.")
@click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]", help="Set a resource limit.")
@click.option("--security-opt", "security_opts", multiple=True, metavar="OPT",
              help="seccomp=unconfined, seccomp=PROFILE.json (Docker's format) or no-new-privileges.")
@resource_options()
@click.option("--name", metavar="NAME", help="Name of the container (its directory in the store).")
@click.option("--entrypoint", metavar="CMD", help="Override the image's entrypoint (\"\" clears it).")
@click.option("--read-only", "read_only", is_flag=True, help="Mount the root filesystem read-only.")
@click.option("--runtime", type=click.Choice(["embedded", "runc"]), default="embedded", show_default=True,
              help="Executor of the container.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Run the image for this platform (an index's instance; a foreign one runs under its emulator).")
@click.option("--pull", type=click.Choice(["missing", "always", "never"]), default=None,
              help="When to pull IMAGE (default: a bare name when missing, other transports always).")
@registry_options(retries=False)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, remove: bool, interactive: bool, tty: bool, init: bool, env: tuple[str, ...],
        volumes: tuple[str, ...], network: str, user: str | None, workdir: str | None, hostname: str | None,
        name: str | None, entrypoint: str | None, read_only: bool, runtime: str,
        image: str, command: tuple[str, ...], env_files: tuple[str, ...], tmpfs: tuple[str, ...],
        cap_add: tuple[str, ...], cap_drop: tuple[str, ...], ulimits: tuple[str, ...], pull: str | None,
        security_opts: tuple[str, ...], platform: str | None, **registry_flags: Any) -> None:
    """Run COMMAND (default: the image's) in a new container from IMAGE."""
    if runtime == "embedded":  # the executor's start-up runs while the image is resolved and the spec made
        from imagetool.runtime import prestart

        ctx.call_on_close(prestart.ahead_once(stdin=None if interactive else prestart.DEVNULL))
    from imagetool.runtime.launch import LaunchOptions, run_image
    from imagetool.runtime.flags import (capabilities, parse_env_file, parse_ulimit, parse_volume,
                                         security_options, tmpfs_mount)
    from imagetool.runtime.spec import RunOptions, default_capabilities

    with _run_failures_exit_125():
        if tty and interactive and not sys.stdin.isatty():
            raise ContainerError("the input device is not a TTY (-i with -t needs a terminal)")
        env_lines = [line for path in env_files for line in parse_env_file(Path(path).read_text())]
        options = RunOptions(
            args=list(command) or None,
            entrypoint=None if entrypoint is None else [entrypoint] if entrypoint else [],
            env=[item for item in map(_env, [*env_lines, *env]) if item is not None], workdir=workdir, user=user,
            terminal=tty, hostname=hostname or _default_hostname(name, network), network=network,
            mounts=[*map(parse_volume, volumes), *map(tmpfs_mount, tmpfs)], readonly_rootfs=read_only, init=init,
            capabilities=capabilities(cap_add, cap_drop, default_capabilities(network)),
            rlimits=[parse_ulimit(u) for u in ulimits],
            seccomp=security_options(security_opts),
            resources=resource_limits(registry_flags))
        etc = etc_settings(registry_flags)
        wanted = _platform(platform)
        store, desc = _resolve(ctx, image, pull, registry_flags, wanted)
        code = run_image(store, desc, LaunchOptions(options, remove=remove, name=name, runtime=runtime,
                                                    interactive=interactive, image_name=image, etc=etc,
                                                    platform=wanted, check_program=_foreign_program))
    ctx.exit(code)


@contextmanager
def _run_failures_exit_125() -> Iterator[None]:
    """Failures of `run` itself (no image, a bad flag value) exit 125, as in docker and podman, so that
    they are told apart from the command's own status."""
    try:
        yield
    except ImagetoolError as err:
        if err.exit_code == 1 or isinstance(err, NotFound):  # skopeo's 2 for "not found": run has docker's 125
            err.exit_code = EXIT_RUN_FAILED
        raise


def _default_hostname(name: str | None, network: str) -> str:
    """The host's own name on the host's network (as docker and podman do), else the container's name."""
    if network == "host":
        import os

        return os.uname().nodename
    return (name or "")[:63] or "container"


def _env(item: str) -> str | None:
    """-e K=V, or -e K to pass this process's value on; a K unset here stays unset (as docker does)."""
    import os

    if "=" in item:
        return item
    return f"{item}={os.environ[item]}" if item in os.environ else None
