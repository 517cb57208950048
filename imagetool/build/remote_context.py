"""`build URL`: a build context fetched from a git repository or an http(s) tarball, as docker and buildah do.

A git context is `git://HOST/REPO`, `git@HOST:REPO`, `https://HOST/REPO.git`, or `github.com/...`,
with an optional `#REF[:SUBDIR]` fragment (a branch, tag or commit; the subdirectory is the
context). Anything else over http(s) is fetched: a tar (plain, gzip, bzip2, xz) is unpacked as
the context; another body is taken as the Dockerfile of an empty context, as docker reads it.
The fetched tree is a plain directory afterwards: the build treats it like any other.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagetool.build.datafilter import unpack_data
from imagetool.errors import BuildError

#: what git may speak to fetch a context and its submodules (no ext::, no local files)
_GIT_PROTOCOLS = "git:http:https:ssh"
_TIMEOUT = 300


@dataclass(frozen=True)
class GitSource:
    url: str
    ref: str
    subdir: str


def is_remote(context: str) -> bool:
    return context.startswith(("http://", "https://", "git://", "git@", "github.com/"))


def is_git(context: str) -> bool:
    url = context.partition("#")[0]
    return context.startswith(("git://", "git@", "github.com/")) or url.rstrip("/").endswith(".git")


def parse_git(context: str) -> GitSource:
    """URL#REF:SUBDIR -> its parts; a ref or subdirectory that could be taken for something else is refused."""
    url, _, fragment = context.partition("#")
    ref, _, subdir = fragment.partition(":")
    if url.startswith("github.com/"):
        url = f"https://{url}"
    if ref.startswith("-") or any(c.isspace() for c in ref):
        raise BuildError(f"{context}: invalid git reference {ref!r}")
    sub = posixpath.normpath(subdir.strip("/")) if subdir.strip("/") else ""
    if sub == ".." or sub.startswith("../"):
        raise BuildError(f"{context}: the subdirectory {subdir!r} leaves the repository")
    return GitSource(url, ref, "" if sub == "." else sub)


def fetch(context: str, into: Path) -> Path:
    """Fetch the remote context into the empty directory `into`; returns the context directory."""
    if is_git(context):
        return _git(parse_git(context), into)
    return _http(context, into)


def _git_run(args: list[str], cwd: Path, what: str) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": _GIT_PROTOCOLS,
           "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        done = subprocess.run(["git", "-c", "protocol.file.allow=never", *args], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=_TIMEOUT)
    except FileNotFoundError as err:
        raise BuildError("git is not installed (needed for a git build context)") from err
    except subprocess.TimeoutExpired as err:
        raise BuildError(f"{what}: git took longer than {_TIMEOUT}s") from err
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise BuildError(f"{what}: {lines[-1] if lines else f'git exited with status {done.returncode}'}")


def _git(source: GitSource, into: Path) -> Path:
    repo = into / "repo"
    repo.mkdir()
    what = f"fetching the git context {source.url}"
    _git_run(["init", "-q"], repo, what)
    _git_run(["remote", "add", "origin", "--", source.url], repo, what)
    ref = source.ref or "HEAD"
    try:
        _git_run(["fetch", "-q", "--depth=1", "origin", "--", ref], repo, what)
    except BuildError:  # dumb http and some servers cannot fetch shallow, or a commit by its ID
        _git_run(["fetch", "-q", "--tags", "origin"], repo, what)
        if ref != "HEAD":
            try:
                _git_run(["fetch", "-q", "origin", "--", ref], repo, what)
            except BuildError:  # a commit ID: among what the full fetch brought
                _git_run(["checkout", "-q", "--detach", ref], repo, what)
                return _finish(repo, source)
        else:
            _git_run(["fetch", "-q", "origin", "HEAD"], repo, what)
    _git_run(["checkout", "-q", "--detach", "FETCH_HEAD"], repo, what)
    return _finish(repo, source)


def _finish(repo: Path, source: GitSource) -> Path:
    _git_run(["submodule", "update", "-q", "--init", "--recursive", "--depth=1"], repo,
             f"fetching the submodules of {source.url}")
    shutil.rmtree(repo / ".git")  # as BuildKit gives it: the files, not the repository
    context = repo / source.subdir if source.subdir else repo
    if not context.resolve().is_relative_to(repo.resolve()) or not context.is_dir():
        raise BuildError(f"{source.url}: no directory {source.subdir!r} at {source.ref or 'HEAD'}")
    return context


def _http(url: str, into: Path) -> Path:
    import requests

    context = into / "context"
    context.mkdir()
    with tempfile.TemporaryFile(dir=into) as body:
        try:
            with requests.get(url, stream=True, timeout=30) as resp:
                if resp.status_code != 200:
                    raise BuildError(f"fetching the build context {url}: HTTP {resp.status_code}")
                for chunk in resp.iter_content(1 << 20):
                    body.write(chunk)
        except requests.RequestException as err:
            raise BuildError(f"fetching the build context {url}: {err}") from err
        body.seek(0)
        try:
            archive = tarfile.open(fileobj=body, mode="r:*")
        except tarfile.TarError:
            archive = None
        if archive is None:  # not a tar: the Dockerfile itself, with an empty context
            body.seek(0)
            with open(context / "Dockerfile", "wb") as f:
                shutil.copyfileobj(body, f)
            return context
        with archive:
            try:
                unpack_data(archive, context)
            except (tarfile.TarError, OSError) as err:
                raise BuildError(f"unpacking the build context {url}: {err}") from err
    return context
