"""`imagetool sync --src docker|dir|yaml --dest docker|dir SOURCE DESTINATION` (skopeo's sync).

SOURCE is a repository (every tag), a tagged image, a directory of dir: images, or a YAML
file of registries -> images (skopeo's format). Each image lands at DESTINATION/<last path
component>:<tag>, or DESTINATION/<full source name>:<tag> with --scoped.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any

import click

from imagetool.cli.options import (policy_from_flags, registry_options, signers_from_flags, signing_options,
                                   system_context)
from imagetool.errors import UsageError
from imagetool.transports.base import SystemContext


@dataclass
class Job:
    source: str                 # a transport:reference string
    name: str                   # repository path used to name the destination
    tag: str                    # tag (or "@digest") the destination gets
    ctx: SystemContext


def _docker_jobs(spec: str, ctx: SystemContext) -> list[Job]:
    from imagetool.reference import parse as parse_reference
    from imagetool.transports.docker import make_client

    ref = parse_reference(spec.removeprefix("docker://"))
    if ref.digest:
        return [Job(f"docker://{ref}", ref.name, f"@{ref.digest}", ctx)]
    if ref.tag:
        return [Job(f"docker://{ref}", ref.name, ref.tag, ctx)]
    tags = make_client(ref, ctx).list_tags(ref.path)
    return [Job(f"docker://{ref.name}:{t}", ref.name, t, ctx) for t in tags]


def _dir_jobs(root: str, ctx: SystemContext) -> list[Job]:
    jobs = []
    for here, _dirs, files in sorted(os.walk(root)):
        if "manifest.json" in files:
            rel = os.path.relpath(here, root)
            name, _, tag = (os.path.basename(root.rstrip("/")) if rel == "." else rel).partition(":")
            jobs.append(Job(f"dir:{here}", name, tag or "latest", ctx))
    if not jobs:
        raise UsageError(f"no dir: images under {root}")
    return jobs


def _yaml_jobs(path: str, base: SystemContext) -> list[Job]:
    import dataclasses

    import yaml

    from imagetool.reference import parse as parse_reference
    from imagetool.transports.docker import make_client

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"reading sync file {path}: {err}") from err
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping of registries")
    jobs: list[Job] = []
    for registry, cfg in doc.items():
        cfg = cfg or {}
        creds = cfg.get("credentials") or {}
        ctx = dataclasses.replace(
            base,
            tls_verify=cfg["tls-verify"] if "tls-verify" in cfg else base.tls_verify,
            cert_dir=cfg.get("cert-dir") or base.cert_dir,
            creds=(str(creds["username"]), str(creds.get("password", ""))) if creds.get("username") else base.creds,
        )
        for repo, tags in (cfg.get("images") or {}).items():
            ref = parse_reference(f"{registry}/{repo}")
            if not tags:
                jobs.extend(_docker_jobs(ref.name, ctx))
            for tag in tags or []:
                sep = "@" if ":" in str(tag) and str(tag).startswith("sha") else ":"
                jobs.extend(_docker_jobs(f"{ref.name}{sep}{tag}", ctx))
        for repo, pattern in (cfg.get("images-by-tag-regex") or {}).items():
            ref = parse_reference(f"{registry}/{repo}")
            rx = re.compile(str(pattern))
            tags = make_client(ref, ctx).list_tags(ref.path)
            jobs.extend(Job(f"docker://{ref.name}:{t}", ref.name, t, ctx) for t in tags if rx.search(t))
    return jobs


def destination(job: Job, dest_kind: str, dest: str, scoped: bool) -> str:
    name = job.name if scoped else job.name.rstrip("/").split("/")[-1]
    tag = job.tag if job.tag.startswith("@") else f":{job.tag}"
    if dest_kind == "docker":
        return f"docker://{dest.removeprefix('docker://').rstrip('/')}/{name}{tag}"
    return f"dir:{os.path.join(dest, name)}{tag}"


def _go_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def _dry_run(jobs: list[Job], dest_kind: str, dest: str, scoped: bool) -> None:
    """What would be copied, in skopeo's words (scripts match them): each image numbered within its
    source repository, then the totals."""
    sources: dict[str, list[Job]] = {}
    for job in jobs:
        sources.setdefault(job.name, []).append(job)
    for group in sources.values():
        for n, job in enumerate(group, 1):
            target = destination(job, dest_kind, dest, scoped)
            click.echo(f"Would have copied image ref {n}/{len(group)} from={_go_quote(job.source)} "
                       f"to={_go_quote(target)}", err=True)
    click.echo(f"Would have synced {len(jobs)} images from {len(sources)} sources", err=True)


@click.command()
@click.argument("source")
@click.argument("destination_")
@click.option("--src", "src_kind", type=click.Choice(["docker", "dir", "yaml"]), required=True,
              help="What SOURCE is.")
@click.option("--dest", "dest_kind", type=click.Choice(["docker", "dir"]), required=True,
              help="What DESTINATION is.")
@click.option("-a", "--all", "all_", is_flag=True, help="Copy every image of an index.")
@click.option("--scoped", is_flag=True, help="Name destinations by the full source name.")
@click.option("-f", "--format", "format_", type=click.Choice(["oci", "v2s2"]), default=None,
              help="Manifest type for the destination.")
@click.option("--preserve-digests", is_flag=True, help="Fail rather than change any digest.")
@click.option("--remove-signatures", is_flag=True, help="Do not copy signatures.")
@click.option("--referrers", is_flag=True, help="Also copy each image's referrers (signatures, SBOMs).")
@signing_options(identity=False)
@click.option("--dry-run", is_flag=True, help="List what would be copied; copy nothing.")
@click.option("--keep-going", is_flag=True, help="Carry on after an image fails; fail at the end.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--max-parallel", type=click.IntRange(1, 64), default=6, help="Blobs copied at once, per image.")
@click.option("--max-parallel-images", type=click.IntRange(1, 64), default=None,
              help="Images copied at once (default: 4 per CPU, at most 16).")
@click.option("--authfile", metavar="PATH", help="Auth file for both sides.")
@registry_options("src", retries=False)
@registry_options("dest")
@click.pass_context
def sync(ctx: click.Context, source: str, destination_: str, src_kind: str, dest_kind: str, all_: bool,
         scoped: bool, format_: str | None, preserve_digests: bool, remove_signatures: bool, dry_run: bool,
         keep_going: bool, quiet: bool, max_parallel: int, max_parallel_images: int | None, **flags: Any) -> None:
    """Copy every image SOURCE names into DESTINATION."""
    from imagetool.copy import CopyOptions, copy_image
    from imagetool.copy.batch import BatchJob, copy_batch, default_parallel_images
    from imagetool.copy.progress import Progress
    from imagetool.transports import parse_image_name

    src_ctx = system_context(ctx, "src_", **flags)
    dest_ctx = system_context(ctx, "dest_", **flags)
    if src_kind == "docker":
        jobs = _docker_jobs(source, src_ctx)
    elif src_kind == "dir":
        jobs = _dir_jobs(source, src_ctx)
    else:
        jobs = _yaml_jobs(source, src_ctx)
    if dry_run:
        _dry_run(jobs, dest_kind, destination_, scoped)
        return
    policy = policy_from_flags(ctx)
    signers = signers_from_flags(flags)

    def job_for(job: Job) -> BatchJob:
        target = destination(job, dest_kind, destination_, scoped)

        def run(progress: Progress) -> None:
            options = CopyOptions(src_ctx=job.ctx, dest_ctx=dest_ctx, multi_arch="all" if all_ else "system",
                                  format=format_, preserve_digests=preserve_digests,
                                  remove_signatures=remove_signatures, policy=policy, max_parallel=max_parallel,
                                  progress=progress, signers=signers, referrers=flags["referrers"])
            copy_image(parse_image_name(job.source), parse_image_name(target), options)
        return BatchJob(f"{job.source} -> {target}", run)

    result = copy_batch([job_for(job) for job in jobs], parallel=max_parallel_images or default_parallel_images(),
                        keep_going=keep_going, quiet=quiet, out=sys.stdout, err=sys.stderr,
                        error_prefix=lambda i: f"imagetool: {jobs[i].source}: ")
    if not quiet:
        click.echo(f"Synced {result.copied} of {len(jobs)} images", err=True)
    if result.failed:
        raise UsageError(f"{result.failed} of {len(jobs)} images failed to sync")
