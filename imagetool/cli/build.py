"""`imagetool build`: buildah's flags over imagetool.build.executor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from imagetool.build.executor import BuildOptions
from imagetool.build.mounts import parse_secrets
from imagetool.build.runstep import ContainerStepRunner
from imagetool.build.executor import build as run_build
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
    """buildah's durations: 2s, 500ms, 1m (a bare number is seconds)."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration (2s, 500ms, 1m)") from None


def _output(logfile: str | None) -> Callable[[str], None]:
    """Where the build's lines go: standard output, or appended to --logfile."""
    if not logfile:
        return lambda line: click.echo(line)
    log = open(logfile, "a", encoding="utf-8")  # noqa: SIM115 - open for the rest of this process

    def write(line: str) -> None:
        log.write(line + "\n")
        log.flush()
    return write


@click.command("build")
@click.argument("context", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("-f", "--file", "dockerfile", metavar="FILE", help="Dockerfile (default CONTEXT/Containerfile "
              "or CONTEXT/Dockerfile).")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME", help="Name the image; repeatable.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Set a build argument.")
@click.option("--target", metavar="STAGE", help="Build this stage (and what it needs) only.")
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
@click.option("--compress", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True,
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
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="The image's platform (default: this machine's).")
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
@click.option("--rm", "--force-rm", is_flag=True, expose_value=False,
              help="Accepted for buildah's sake: step containers are never kept.")
@click.option("--ignorefile", type=click.Path(exists=True, dir_okay=False),
              help="Use this file instead of .dockerignore.")
@click.option("--pull", type=click.Choice(["missing", "always", "never", "true", "false"]), default="missing",
              show_default=True, help="When to pull base images (true = missing, false = never).")
@tls_verify_option()
@click.option("--creds", metavar="USER[:PASSWORD]", help="Registry credentials for pulling base images.")
@click.option("--authfile", metavar="PATH", help="Registry auth file.")
@click.option("--cert-dir", metavar="DIR", help="Certificates for the registry.")
@click.option("--output", "outputs", multiple=True, metavar="IMAGE",
              help="Also copy the result to IMAGE (oci:DIR[:TAG], docker-archive:FILE, ...); repeatable.")
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
@click.pass_context
def build(ctx: click.Context, context: str, dockerfile: str | None, tags: tuple[str, ...],
          build_args: tuple[str, ...], target: str | None, labels: tuple[str, ...], timestamp: int | None,
          no_cache: bool, layers: bool, iidfile: str | None, quiet: bool, fmt: str, compress: str,
          network: str | None, squash: bool, pull: str, outputs: tuple[str, ...], pushes: tuple[str, ...],
          secrets: tuple[str, ...], platform: str | None, ignorefile: str | None, runtime: str,
          annotations: tuple[str, ...], env: tuple[str, ...], unsetenv: tuple[str, ...], os_: str | None,
          arch: str | None, variant: str | None, cap_add: tuple[str, ...],
          cap_drop: tuple[str, ...], ulimits: tuple[str, ...], volumes: tuple[str, ...],
          build_contexts: tuple[str, ...], manifest_list: str | None, cache_from: tuple[str, ...],
          cache_to: str | None, disable_compression: bool, from_image: str | None, omit_history: bool,
          logfile: str | None, security_opts: tuple[str, ...], **flags: Any) -> None:
    """Build an image from a Dockerfile; it lands in the local store."""
    root = ctx.find_root().obj or {}
    path = Path(dockerfile) if dockerfile else next(
        (Path(context) / n for n in ("Containerfile", "Dockerfile") if (Path(context) / n).is_file()),
        Path(context) / "Dockerfile")
    options = BuildOptions(
        dockerfile=path, context=Path(context), store=LayoutStore.create(default_store_path(root.get("store"))),
        tags=list(tags), build_args=_from_environment(build_args, "--build-arg"), target=target,
        labels=_pairs(labels, "--label"), annotations=_pairs(annotations, "--annotation"),
        env=_from_environment(env, "--env"), unsetenv=list(unsetenv),
        contexts=_pairs(build_contexts, "--build-context"), cache_from=list(cache_from), cache_to=cache_to,
        timestamp=timestamp, no_cache=no_cache or not layers, oci=fmt == "oci", network=network,
        compression=None if compress == "none" or disable_compression else compress, quiet=quiet,
        output=_output(logfile), tmpdir=root.get("tmpdir"), from_image=from_image, omit_history=omit_history,
        ctx=system_context(ctx, **flags), squash=squash, secrets=parse_secrets(secrets),
        pull={"true": "missing", "false": "never"}.get(pull, pull), platform=_platform(platform, os_, arch, variant),
        ignorefile=Path(ignorefile) if ignorefile else None, policy=_PolicyOnPull(ctx),
        runner=ContainerStepRunner(
            runtime=runtime, tmpdir=root.get("tmpdir"), etc=etc_settings(flags),
            capabilities=capabilities(cap_add, cap_drop, default_capabilities(
                "private" if network in (None, "default") else network)) if cap_add or cap_drop else None,
            rlimits=[parse_ulimit(u) for u in ulimits], volumes=[parse_volume(v, build=True) for v in volumes],
            seccomp=security_options(security_opts),
            resources=resource_limits(flags)))
    destinations = [parse_image_name(d) for d in (*outputs, *pushes)]  # bad names fail before the build
    signers = signers_from_flags(flags)  # a bad key or passphrase fails before the build
    if signers and not destinations:
        raise UsageError("--sign-by signs what --push or --output writes: give one of them")
    result = run_build(options)
    if manifest_list:
        from imagetool import manifest_lists
        from imagetool.transports.local import parse as parse_local

        manifest_lists.add(options.store, manifest_list, parse_local(result.image_id.hex), create_missing=True,
                           copy=CopyOptions(policy=ACCEPT_ANYTHING))  # the image was just built here
    for dest in destinations:
        sys_ctx = options.ctx or system_context(ctx)
        copy_image(parse_image_name(result.image_id.hex), dest,
                   CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, signers=signers,
                               policy=ACCEPT_ANYTHING))  # the image was just built here
        if not quiet:
            click.echo(f"Copied to {dest}")
    if quiet:
        click.echo(result.image_id.hex)
    if iidfile:
        from imagetool.outputs import write_output

        write_output(iidfile, str(result.image_id).encode())
