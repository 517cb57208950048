"""What a sync source names, one job per image: a repository's tags, a dir: tree, or a sync YAML file.

Each job's destination is DESTINATION/<last path component>:<tag>, or DESTINATION/<full source
name>:<tag> when scoped (skopeo's layout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from imagetool.errors import UsageError
from imagetool.reference import parse as parse_reference
from imagetool.sync.config import SyncConfig
from imagetool.transports.base import SystemContext


@dataclass
class Job:
    source: str                 # a transport:reference string
    name: str                   # repository path used to name the destination
    tag: str                    # tag (or "@digest") the destination gets
    ctx: SystemContext


def _list_tags(name: str, ctx: SystemContext) -> list[str]:
    from imagetool.transports.docker import make_client

    ref = parse_reference(name)
    return list(make_client(ref, ctx).list_tags(ref.path))


def docker_jobs(spec: str, ctx: SystemContext) -> list[Job]:
    """A registry image (one job) or repository (a job per tag), with or without docker://."""
    ref = parse_reference(spec.removeprefix("docker://"))
    if ref.digest:
        return [Job(f"docker://{ref}", ref.name, f"@{ref.digest}", ctx)]
    if ref.tag:
        return [Job(f"docker://{ref}", ref.name, ref.tag, ctx)]
    return [Job(f"docker://{ref.name}:{t}", ref.name, t, ctx) for t in _list_tags(ref.name, ctx)]


def dir_jobs(root: str, ctx: SystemContext) -> list[Job]:
    """Every dir: image (a directory holding manifest.json) under `root`, named by its path below it."""
    jobs = []
    for here, _dirs, files in sorted(os.walk(root)):
        if "manifest.json" in files:
            rel = os.path.relpath(here, root)
            name, _, tag = (os.path.basename(root.rstrip("/")) if rel == "." else rel).partition(":")
            jobs.append(Job(f"dir:{here}", name, tag or "latest", ctx))
    if not jobs:
        raise UsageError(f"no dir: images under {root}")
    return jobs


def yaml_jobs(config: SyncConfig, base: SystemContext) -> list[Job]:
    """The images a sync YAML file names; `base` (the --src-* flags) under each registry's own settings."""
    jobs: list[Job] = []
    for registry in config.registries:
        ctx = registry.system_context(base)
        for repo, tags in registry.images.items():
            ref = parse_reference(f"{registry.registry}/{repo}")
            if not tags:
                jobs.extend(docker_jobs(ref.name, ctx))
            for tag in tags:
                sep = "@" if ":" in tag and tag.startswith("sha") else ":"
                jobs.extend(docker_jobs(f"{ref.name}{sep}{tag}", ctx))
        for repo, pattern in registry.images_by_tag_regex.items():
            ref = parse_reference(f"{registry.registry}/{repo}")
            jobs.extend(Job(f"docker://{ref.name}:{t}", ref.name, t, ctx) for t in _list_tags(ref.name, ctx)
                        if pattern.search(t))
    return jobs


def destination(job: Job, dest_kind: str, dest: str, scoped: bool) -> str:
    """Where `job` lands under `dest` (a docker repository prefix or a directory)."""
    name = job.name if scoped else job.name.rstrip("/").split("/")[-1]
    tag = job.tag if job.tag.startswith("@") else f":{job.tag}"
    if dest_kind == "docker":
        return f"docker://{dest.removeprefix('docker://').rstrip('/')}/{name}{tag}"
    return f"dir:{os.path.join(dest, name)}{tag}"
