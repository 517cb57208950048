"""The builder's StepRunner over the runtime's Container: one RUN step, its mounts and heredoc files.

The step's changes land in the upperdir the executor gave us; whatever the runtime had
to create only to mount over (/etc/hosts, /proc, RUN --mount targets, heredoc files) is
tidied away again so it does not end up in the layer.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from stat import S_ISDIR
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from imagetool import userns
from imagetool.build.mounts import HostMount, chown_tree
from imagetool.build.rootview import RootView, resolve_owner
from imagetool.build.stagewalker import RunWork
from imagetool.errors import BuildError
from imagetool.runtime import prestart
from imagetool.runtime.container import Container
from imagetool.runtime.etcfiles import EtcSettings
from imagetool.runtime.spec import RunOptions, bind_mount, build_spec

HOSTNAME = "buildkitsandbox"
#: RUN gets a private network unless told otherwise, as buildah's oci isolation does: a namespace of
#: its own whose way out (apt-get needs one) is slirp4netns, with no way to the host's loopback services
NETWORKS = {"default": "private", "private": "private", "host": "host", "none": "none"}


class ContainerStepRunner:
    """Runs RUN steps in the embedded runtime (or runc) with the build's own upperdir."""

    def __init__(self, runtime: str = "embedded", tmpdir: str | None = None, *,
                 etc: EtcSettings | None = None, capabilities: list[str] | None = None,
                 rlimits: list[dict[str, Any]] | None = None, volumes: list[dict[str, Any]] | None = None,
                 seccomp: str | dict[str, Any] = "default",
                 resources: dict[str, Any] | None = None, runtime_flags: list[str] | None = None) -> None:
        self.runtime = runtime
        #: --runtime-flag: runc's global flags, as buildah passes them
        self.runtime_flags = runtime_flags or []
        self.tmpdir = tmpdir
        # buildah's --add-host, --dns..., --cap-add/--cap-drop, --ulimit and --volume: the same for every RUN
        self.etc = etc
        self.capabilities = capabilities
        self.rlimits = rlimits or []
        self.volumes = volumes or []
        self.seccomp = seccomp
        #: --memory, --pids-limit, --cpus...: linux.resources for each RUN step (None: the runtime's default)
        self.resources = resources
        #: what ends each executor started ahead (prepare) if no RUN takes it
        self._ahead: list[Callable[[], None]] = []

    def prepare(self, count: int = 1) -> None:
        """A RUN comes later: have `count` executors started (the step under way's, if it is a RUN, and
        the next RUN's), so that the next one's interpreter start-up overlaps the step under way; each
        Container takes one (same standard streams)."""
        while self.runtime == "embedded" and len(self._ahead) < min(count, 2):
            self._ahead.append(prestart.ahead(subprocess.DEVNULL, subprocess.PIPE, subprocess.STDOUT))

    def close(self) -> None:
        """End the executors started ahead that no RUN took."""
        ends, self._ahead = self._ahead, []
        for end in ends:
            end()

    def run(self, work: RunWork, lowers: list[Path], upper: Path, mounts: list[HostMount],
            output: Callable[[str], None]) -> int:
        network = NETWORKS.get(work.network)
        if network is None:
            raise BuildError(f"RUN --network={work.network}: expected default, host or none")
        scratch = Path(tempfile.mkdtemp(prefix=".run-", dir=upper.parent))
        try:
            with ExitStack() as stack:
                spec_mounts = [self._mount(m, scratch / f"m{i}", stack) for i, m in enumerate(mounts)]
                spec_mounts += self._files(work, scratch / "files") + self._volumes(work, lowers, scratch)
                spec_mounts.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
                options = RunOptions(args=list(work.argv), entrypoint=[], env=list(work.env),
                                     workdir=work.workdir or "/", user=work.user or "", hostname=HOSTNAME,
                                     network=network, mounts=spec_mounts, capabilities=self.capabilities,
                                     rlimits=self.rlimits, seccomp=self.seccomp)
                if self.resources is not None:
                    options.resources = self.resources
                spec = build_spec({}, options)
                container = Container(spec, lowers or [self._empty(scratch)], upper, runtime=self.runtime,
                                      tidy=True, tmpdir=self.tmpdir, etc=self.etc,
                                      runtime_flags=self.runtime_flags)
                mine = self._ahead.pop(0) if self._ahead else None  # the one this container takes
                try:
                    return container.run(stdin=subprocess.DEVNULL, output=output)
                finally:
                    if mine is not None:
                        mine()  # nothing if it was taken
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _volumes(self, work: RunWork, lowers: list[Path], scratch: Path) -> list[dict[str, Any]]:
        """-v mounts for this step: U chowns the host directory to the step's user (buildah's and
        podman's meaning, and their warning: it changes the host's files), O lays a throwaway upper on it."""
        out = []
        for n, volume in enumerate(self.volumes):
            volume = dict(volume)
            chown, overlay = volume.pop("chown", False), volume.pop("overlay", False)
            if chown:
                ids = userns.call(resolve_owner, RootView(lowers), work.user) if work.user else (0, 0)
                userns.call(chown_tree, Path(volume["source"]), *ids)
            if overlay:
                layer = scratch / f"v{n}"
                (layer / "upper").mkdir(parents=True)
                (layer / "work").mkdir()
                volume = {"destination": volume["destination"], "type": "overlay", "source": "overlay",
                          "options": [f"lowerdir={volume['source']}", f"upperdir={layer / 'upper'}",
                                      f"workdir={layer / 'work'}"]}
            out.append(volume)
        return out

    @staticmethod
    def _empty(scratch: Path) -> Path:
        empty = scratch / "empty"
        empty.mkdir()
        return empty

    def _mount(self, m: HostMount, scratch: Path, stack: ExitStack) -> dict[str, Any]:
        if m.type == "tmpfs":
            options = ["nosuid", "nodev"] + ([f"size={m.size}"] if m.size else [])
            return {"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": options}
        if m.chown is not None:
            return bind_mount(str(_owned_copy(m, scratch)), m.target, m.readonly)
        if m.path is not None or m.data is not None:
            source = m.path
            if m.options:  # a secret or an rw context file: a private copy with this mode and owner
                scratch.mkdir(parents=True, exist_ok=True)
                source = scratch / "file"
                if m.data is not None:
                    source.write_bytes(m.data)
                elif m.path is not None:
                    shutil.copyfile(m.path, source)
                os.chmod(source, m.options.get("mode", 0o400))
                if os.geteuid() == 0 or userns.needed():  # rootless: chowned to the container's ids
                    userns.call(os.chown, source, m.options.get("uid", 0), m.options.get("gid", 0))
            if m.sharing == "locked":
                stack.enter_context(_flock(Path(str(m.path) + ".lock")))
            return bind_mount(str(source), m.target, m.readonly)
        return self._layered(m, scratch)

    @staticmethod
    def _layered(m: HostMount, scratch: Path) -> dict[str, Any]:
        """A stage or image as a mount: its layers as an overlay, read-only or with a throwaway upper."""
        sub = m.subpath.strip("/")
        lowers = [str(layer / sub) for layer in m.layers if (layer / sub).is_dir()] if sub else \
            [str(layer) for layer in m.layers]
        if not lowers:
            raise BuildError(f"RUN --mount target {m.target}: {m.subpath} is not a directory in its source")
        if len(lowers) == 1 and m.readonly:  # overlay wants two lowers without an upper; runc has no fallback
            return bind_mount(lowers[0], m.target, readonly=True)
        options = ["lowerdir=" + ":".join(lowers)]
        if m.readonly:
            options.append("ro")
        else:
            scratch.mkdir(parents=True)
            (scratch / "upper").mkdir()
            (scratch / "work").mkdir()
            options += [f"upperdir={scratch / 'upper'}", f"workdir={scratch / 'work'}"]
        return {"destination": m.target, "type": "overlay", "source": "overlay", "options": options}

    @staticmethod
    def _files(work: RunWork, where: Path) -> list[dict[str, Any]]:
        """Heredoc files, each bound read-only at its path for the length of the step."""
        out = []
        for n, (path, content, mode) in enumerate(work.files):
            where.mkdir(parents=True, exist_ok=True)
            host = where / f"f{n}"
            host.write_text(content)
            os.chmod(host, mode)
            out.append(bind_mount(str(host), path, readonly=True))
        return out


def _owned_copy(m: HostMount, scratch: Path) -> Path:
    """A mount's content copied for one step, every file owned by `m.chown` (the U flag): what the
    step writes there, and the new owners, never reach the source."""
    from imagetool.build.copier import Copier
    from imagetool.build.rootview import RootView
    from imagetool.build.stagewalker import CopyWork

    uid, gid = m.chown or (0, 0)
    owned = scratch / "owned"
    owned.mkdir(parents=True)

    def make() -> Path:
        view = RootView(list(m.layers))
        top = view.lstat(view.resolve(m.subpath))
        if top is None:
            raise BuildError(f"RUN --mount target {m.target}: {m.subpath} is not in its source")
        Copier(owned, []).copy(CopyWork((m.subpath,), "/", from_stage=0, chown=f"{uid}:{gid}"), source=view)
        if not S_ISDIR(top.st_mode):  # a file: copied as owned/NAME
            return owned / os.listdir(owned)[0]
        os.chmod(owned, top.st_mode & 0o7777)
        os.lchown(owned, uid, gid)
        return owned

    return userns.call(make)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock for a cache mount with sharing=locked, held for the whole step."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
