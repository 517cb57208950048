"""`imagetool build`: buildah's flags over imagetool.build.executor."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from imagetool.build.executor import BuildOptions
from imagetool.build.mounts import parse_secrets
from imagetool.build.runstep import ContainerStepRunner
from imagetool.build.executor import build as run_build
from imagetool.cli.goflags import go_bool_command
from imagetool.cli.limits import resource_limits, resource_options
from imagetool.cli.options import (etc_options, etc_settings, platform_parts, policy_from_flags,
                                   signers_from_flags, signing_options, system_context, tls_verify_option)
from imagetool.runtime.flags import capabilities, parse_ulimit, parse_volume, security_options
from imagetool.runtime.spec import default_capabilities
from imagetool.copy import ACCEPT_ANYTHING, CopyOptions, copy_image
from imagetool.transports import parse_image_name
from imagetool.errors import UsageError
from imagetool.store import default_store_path
from imagetool.store.layout import LayoutStore


class _PolicyOnPull:
    """The trust policy, loaded only when a base image is actually pulled (FROM scratch needs none)."""

    def __init__(self, ctx: click.Context) -> None:
        self.ctx = ctx

    def check(self, *args: Any) -> str:
        policy = policy_from_flags(self.ctx)
        return policy.check(*args) if policy is not None else ""


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise UsageError(f"{flag} {value!r}: expected KEY=VALUE")
        out[key] = val if sep else ""
    return out


def _from_environment(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """--build-arg/--env K=V, or K alone to take the value from the environment (as docker and buildah do)."""
    import os

    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise UsageError(f"{flag} {value!r}: expected KEY=VALUE")
        if sep:
            out[key] = val
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


def _platform(platform: str | None, os_: str | None, arch: str | None, variant: str | None) -> str | None:
    """The image's platform from --platform or --os/--arch/--variant (the host's for the parts not given)."""
    os_, arch, variant = platform_parts(platform, os_, arch, variant)
    if not (os_ or arch or variant):
        return None
    from imagetool.descriptor import host_platform

    host = host_platform()
    parts = [os_ or host.os, arch or host.architecture]
    variant = variant or (host.variant if not arch else None)
    return "/".join(parts + [variant] if variant else parts)


def _duration(text: str) -> float:
    """buildah's durations: Go's (2s, 500ms, 1m30s), and a bare number is seconds."""
    from imagetool import goduration

    try:
        return goduration.seconds(text, signed=False, bare_unit="s")
    except ValueError as err:
        raise click.BadParameter(f"{text!r} is not a duration (2s, 500ms, 1m)") from err


def _output(logfile: str | None) -> Callable[[str], None]:
    """Where the build's lines go: standard output, or appended to --logfile."""
    if not logfile:
        return lambda line: click.echo(line)
    log = open(logfile, "a", encoding="utf-8")  # noqa: SIM115 - open for the rest of this process

    def write(line: str) -> None:
        log.write(line + "\n")
        log.flush()
    return write


@go_bool_command("build")
@click.argument("context", default=".")
@click.option("-f", "--file", "dockerfiles", multiple=True, metavar="FILE",
              help="Dockerfile (default CONTEXT/Containerfile or CONTEXT/Dockerfile); several are read as one, "
                   "in order.")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME",
              help="Name the image (a short name is localhost/NAME); with a transport (oci-archive:FILE, "
                   "oci:DIR:TAG, docker://...) the image is also written there; repeatable.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Set a build argument.")
@click.option("--target", metavar="STAGE", help="Build this stage (and what it needs) only.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="How many independent stages, and platforms, to build at once (default: the CPU count).")
@click.option("--skip-unused-stages/--no-skip-unused-stages", default=True, show_default=True,
              help="Build only the stages the target needs; =false builds every stage up to the target.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Add a label to the image.")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Add an annotation to the image's manifest (OCI format).")
@click.option("--env", "env", multiple=True, metavar="KEY[=VALUE]", help="Set a variable in the image's environment.")
@click.option("--unsetenv", multiple=True, metavar="KEY", help="Remove a variable from the image's environment.")
@click.option("--timestamp", type=int, metavar="SECONDS",
              help="Creation time and file time ceiling, for reproducible images (default $SOURCE_DATE_EPOCH).")
@click.option("--no-cache", is_flag=True, help="Run every step, ignoring cached layers.")
@click.option("--cache-from", multiple=True, metavar="REPOSITORY",
              help="Look for step layers missing here in this registry repository; repeatable.")
@click.option("--cache-to", metavar="REPOSITORY", help="Record the build's step layers in this registry repository.")
@click.option("--layers/--no-layers", default=True, show_default=True,
              help="Cache each step's layer (buildah's --layers).")
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID to this file.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--format", "fmt", type=click.Choice(["oci", "docker"]), default="oci", show_default=True)
@click.option("--compress", "--compression-format", "compress",
              type=click.Choice(["gzip", "zstd", "zstd:chunked", "none"]), default="gzip", show_default=True,
              help="Layer compression.")
@click.option("-D", "--disable-compression", is_flag=True, help="Store layers uncompressed (--compress none).")
@click.option("--from", "from_image", metavar="IMAGE", help="Build the first stage on IMAGE instead of its FROM.")
@click.option("--omit-history", is_flag=True, help="Leave the history out of the image's config.")
@click.option("--logfile", type=click.Path(dir_okay=False), help="Write the build's output to this file.")
@click.option("--retry", "retry_times", type=int, default=None, help="Retries for pulls and pushes (default 3).")
@click.option("--retry-delay", type=_duration, default=None, metavar="DURATION",
              help="Delay between retries (2s, 500ms; default: backoff).")
@click.option("--network", type=click.Choice(["default", "private", "host", "none"]), default=None,
              help="Network for RUN steps that do not choose one: default/private (own namespace, outbound "
                   "through slirp4netns, not the host's loopback), none (loopback only), host (unsafe).")
@click.option("--squash", is_flag=True, help="Commit the new layers as one.")
@click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]",
              help="The image's platform (default: this machine's); several (repeated or comma-separated) build "
                   "one image each, gathered in a manifest list (--manifest or -t).")
@click.option("--all-platforms", is_flag=True, help="Build for every platform all the base images offer.")
@click.option("--os", "os_", metavar="OS", help="The image's OS (with the host's architecture unless --arch).")
@click.option("--arch", metavar="ARCH", help="The image's architecture.")
@click.option("--variant", metavar="VARIANT", help="The image's architecture variant.")
@etc_options()
@click.option("--cap-add", multiple=True, metavar="CAP", help="Add a capability (or ALL) for RUN steps.")
@click.option("--cap-drop", multiple=True, metavar="CAP", help="Drop a capability (or ALL) for RUN steps.")
@click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]", help="A resource limit for RUN steps.")
@click.option("--security-opt", "security_opts", multiple=True, metavar="OPT",
              help="For RUN steps: seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges.")
@resource_options("each RUN step")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="SRC:DST[:ro]",
              help="Bind a host path into RUN steps (not committed).")
@click.option("--rm/--no-rm", "remove", default=True, show_default=True,
              help="Remove step containers (--rm=false is accepted: a step leaves no container to keep, its "
                   "layer is in the cache).")
@click.option("--force-rm", is_flag=True, expose_value=False, help="Accepted: step containers are always removed.")
@click.option("--ignorefile", type=click.Path(exists=True, dir_okay=False),
              help="Use this file instead of .dockerignore.")
@click.option("--pull", type=click.Choice(["missing", "always", "never", "true", "false"]), default="missing",
              show_default=True, help="When to pull base images (true = missing, false = never).")
@tls_verify_option()
@click.option("--creds", metavar="USER[:PASSWORD]", help="Registry credentials for pulling base images.")
@click.option("--authfile", metavar="PATH", help="Registry auth file.")
@click.option("--cert-dir", metavar="DIR", help="Certificates for the registry.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="type=local,dest=DIR|type=tar,dest=FILE|DIR",
              help="Write the final root filesystem to a directory or a tar (dest=- or bare - for standard "
                   "output); repeatable. Images go to -t TRANSPORT:NAME or --push.")
@click.option("--build-context", "build_contexts", multiple=True, metavar="NAME=DIR|docker-image://REF",
              help="A context COPY --from=NAME, RUN --mount from=NAME and FROM NAME can use; repeatable.")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID,src=PATH|env=VAR",
              help="A file RUN --mount=type=secret,id=ID can read; repeatable.")
@click.option("--push", "pushes", multiple=True, metavar="IMAGE", help="Push the result to IMAGE (docker://...).")
@click.option("--manifest", "manifest_list", metavar="LIST",
              help="Add the image to the manifest list LIST in the local store (made if missing).")
@signing_options(identity=False)
@click.option("--runtime", type=click.Choice(["embedded", "runc"]), default="embedded", show_default=True,
              help="What runs RUN steps: the embedded runtime or the runc binary.")
@click.option("--runtime-flag", "runtime_flags", multiple=True, metavar="FLAG[=VALUE]",
              help="A global flag for runc (debug, log-format=json...; --runtime runc only); repeatable.")
@click.pass_context
def build(ctx: click.Context, context: str, dockerfiles: tuple[str, ...], tags: tuple[str, ...],
          build_args: tuple[str, ...], target: str | None, labels: tuple[str, ...], timestamp: int | None,
          no_cache: bool, layers: bool, iidfile: str | None, quiet: bool, fmt: str, compress: str,
          network: str | None, squash: bool, pull: str, outputs: tuple[str, ...], pushes: tuple[str, ...],
          secrets: tuple[str, ...], platforms: tuple[str, ...], all_platforms: bool, ignorefile: str | None,
          runtime: str, runtime_flags: tuple[str, ...], remove: bool,
          annotations: tuple[str, ...], env: tuple[str, ...], unsetenv: tuple[str, ...], os_: str | None,
          arch: str | None, variant: str | None, cap_add: tuple[str, ...],
          cap_drop: tuple[str, ...], ulimits: tuple[str, ...], volumes: tuple[str, ...],
          build_contexts: tuple[str, ...], manifest_list: str | None, cache_from: tuple[str, ...],
          cache_to: str | None, disable_compression: bool, from_image: str | None, omit_history: bool,
          logfile: str | None, security_opts: tuple[str, ...], jobs: int | None, skip_unused_stages: bool,
          **flags: Any) -> None:
    """Build an image from a Dockerfile in CONTEXT (a directory, a git repository URL[#REF[:DIR]] or an
    http(s) tarball); it lands in the local store."""
    from imagetool.build.outputs import parse_output, platform_dir
    from imagetool.build.remote_context import is_remote

    root = ctx.find_root().obj or {}
    if runtime_flags and runtime != "runc":
        raise UsageError("--runtime-flag passes global flags to runc: it needs --runtime runc")
    rootfs_outputs = [parse_output(o) for o in outputs]
    names = [t for t in tags if not _has_transport(t)]
    destinations = [parse_image_name(t) for t in tags if _has_transport(t)]  # bad names fail before the build
    destinations += [parse_image_name(d) for d in pushes]
    signers = signers_from_flags(flags)  # a bad key or passphrase fails before the build
    if signers and not destinations:
        raise UsageError("--sign-by signs what --push or -t TRANSPORT:NAME writes: give one of them")
    wanted = _platforms(platforms, os_, arch, variant)
    if all_platforms and wanted:
        raise UsageError("--all-platforms cannot be combined with --platform, --os, --arch or --variant")
    store = LayoutStore.create(default_store_path(root.get("store")))
    with ExitStack() as cleanup:
        if is_remote(context):
            context_dir = _fetch_context(context, root.get("tmpdir"), cleanup)
        else:
            context_dir = Path(context)
            if not context_dir.is_dir():
                raise click.BadParameter(f"{context!r} is not a directory or a remote context (git or http(s) "
                                         "URL)", param_hint="'CONTEXT'")
        files = [_dockerfile_path(f, context_dir, is_remote(context)) for f in dockerfiles] or [next(
            (context_dir / n for n in ("Containerfile", "Dockerfile") if (context_dir / n).is_file()),
            context_dir / "Dockerfile")]

        runner = ContainerStepRunner(
            runtime=runtime, tmpdir=root.get("tmpdir"), etc=etc_settings(flags),
            capabilities=capabilities(cap_add, cap_drop, default_capabilities(
                "private" if network in (None, "default") else network)) if cap_add or cap_drop else None,
            rlimits=[parse_ulimit(u) for u in ulimits], volumes=[parse_volume(v, build=True) for v in volumes],
            seccomp=security_options(security_opts), resources=resource_limits(flags),
            runtime_flags=[f"--{f.lstrip('-')}" for f in runtime_flags])
        sys_ctx = system_context(ctx, **flags)

        def options(platform: str | None, tags: list[str], subdir: str | None) -> BuildOptions:
            return BuildOptions(
                dockerfile=files[0], more_dockerfiles=files[1:], context=context_dir, store=store,
                tags=tags, build_args=_from_environment(build_args, "--build-arg"), target=target,
                labels=_pairs(labels, "--label"), annotations=_pairs(annotations, "--annotation"),
                env=_from_environment(env, "--env"), unsetenv=list(unsetenv),
                contexts=_pairs(build_contexts, "--build-context"), cache_from=list(cache_from), cache_to=cache_to,
                timestamp=timestamp, no_cache=no_cache or not layers, oci=fmt == "oci", network=network,
                compression=None if compress == "none" or disable_compression else compress, quiet=quiet,
                output=_output(logfile), tmpdir=root.get("tmpdir"), from_image=from_image,
                omit_history=omit_history, squash=squash,
                secrets=parse_secrets(secrets), pull={"true": "missing", "false": "never"}.get(pull, pull),
                platform=platform, ignorefile=Path(ignorefile) if ignorefile else None, policy=_PolicyOnPull(ctx),
                rootfs_outputs=rootfs_outputs, output_subdir=subdir, jobs=jobs,
                skip_unused_stages=skip_unused_stages, runner=runner, ctx=sys_ctx)

        if all_platforms:
            wanted = _all_platforms(options(None, [], None))
        if len(wanted) <= 1:
            result = run_build(options(wanted[0] if wanted else None, names, None))
            if manifest_list:
                _add_to_list(store, manifest_list, [result.image_id.hex])
            image_id, source = result.image_id.hex, result.image_id.hex
        else:
            from imagetool.build.multiplatform import build_platforms

            built = [r.image_id.hex for r in build_platforms(lambda p: options(p, [], platform_dir(p)), wanted,
                                                             jobs, None if quiet else click.echo)]
            image_id = source = _gather(store, manifest_list, names, built)
    for dest in destinations:
        copy_image(parse_image_name(source), dest,
                   CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, signers=signers, multi_arch="all",
                               policy=ACCEPT_ANYTHING))  # the image was just built here
        if not quiet:
            click.echo(f"Copied to {dest}")
    if quiet:
        click.echo(image_id.removeprefix("sha256:"))
    if iidfile:
        from imagetool.outputs import write_output

        write_output(iidfile, f"sha256:{image_id.removeprefix('sha256:')}".encode())


def _has_transport(name: str) -> bool:
    """-t oci-archive:FILE, oci:DIR:TAG, docker://REF...: a name with a transport, as buildah reads -t."""
    from imagetool.transports import TRANSPORTS

    head, sep, _ = name.partition(":")
    return bool(sep) and head in TRANSPORTS and head != "local"


def _platforms(values: tuple[str, ...], os_: str | None, arch: str | None, variant: str | None) -> list[str]:
    """--platform, repeated or comma-separated (or --os/--arch/--variant): each as os/arch[/variant]."""
    split = [p.strip() for v in values for p in v.split(",") if p.strip()]
    if len(split) <= 1:
        one = _platform(split[0] if split else None, os_, arch, variant)
        return [one] if one else []
    if os_ or arch or variant:
        raise UsageError("--platform cannot be combined with --os, --arch or --variant")
    return list(dict.fromkeys(_platform(p, None, None, None) or "" for p in split))


def _all_platforms(options: BuildOptions) -> list[str]:
    from imagetool.build.dockerfile import parse_file
    from imagetool.build.platforms import all_platforms
    from imagetool.build.stages import plan
    from imagetool.transports.base import SystemContext

    p = plan(parse_file(options.dockerfile), options.build_args, options.target, first_from=options.from_image)
    return all_platforms(p, options.ctx or SystemContext(store=str(options.store.root)))


def _fetch_context(url: str, tmpdir: str | None, cleanup: ExitStack) -> Path:
    """A remote context fetched into a temporary directory, removed after the build."""
    import shutil
    import tempfile

    from imagetool.build.remote_context import fetch

    where = Path(tempfile.mkdtemp(prefix="imagetool-context-", dir=tmpdir))
    cleanup.callback(shutil.rmtree, where, True)
    return fetch(url, where)


def _dockerfile_path(text: str, context: Path, remote: bool) -> Path:
    """-f FILE: as given (relative to here); with a remote context, a relative name is inside the context,
    as docker reads it."""
    path = Path(text)
    if remote and not path.is_absolute():
        from imagetool.build.context import clean

        return context / clean(text)
    return path


def _add_to_list(store: LayoutStore, name: str, images: list[str]) -> None:
    from imagetool import manifest_lists
    from imagetool.transports.local import parse as parse_local

    for image in images:
        manifest_lists.add(store, name, parse_local(image), create_missing=True,
                           copy=CopyOptions(policy=ACCEPT_ANYTHING))  # the image was just built here


def _gather(store: LayoutStore, manifest_list: str | None, names: list[str], built: list[str]) -> str:
    """Several platforms' images in one list: --manifest LIST (kept, added to), and -t names it too, as
    BuildKit names a multi-platform result. Returns the list's digest."""
    import os

    from imagetool import manifest_lists
    from imagetool.build.imagewriter import store_name
    from imagetool.store import refs

    holder = manifest_list or f"localhost/imagetool-build-{os.getpid()}:{os.urandom(4).hex()}"
    _add_to_list(store, holder, built)
    desc, _ = manifest_lists.load(store, holder)
    for name in names:
        refs.set_name(store, store_name(name), desc, keep_dangling=True)
    if not manifest_list:
        if not names:
            refs.set_name(store, None, desc)  # kept without a name, as a build without -t keeps its image
        refs.remove_name(store, manifest_lists.list_name(holder))
    return str(desc.digest)
