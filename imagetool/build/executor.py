"""Run a build plan: each needed stage, step by step, into layers and an image in the local store.

The StageWalker says what each step needs; this module does it: config steps only add
history, COPY/ADD fill a fresh upperdir over the stage's layer directories, and every
layer is written straight into the store. A step whose cache key is known reuses its
layer and runs nothing. RUN goes to a StepRunner (the embedded runtime); FROM an image
needs its layers as directories (snapshots): both are hooks, filled in by the runtime.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from imagetool import compression, userns
from imagetool.build.base import BaseResolver, Register, StoreResolver, Unpack, snapshot_register, snapshot_unpack
from imagetool.copy.options import PolicyChecker
from imagetool.build import dockerignore, emulation
from imagetool.build.cache import BuildCache, CacheEntry, base_key
from imagetool.build.imagewriter import ImageParts, commit, default_timestamp, rfc3339, store_name
from imagetool.build.config import DEFAULT_PATH, DEFAULT_SHELL, ConfigState
from imagetool.build.context import BuildContext, NamedContexts
from imagetool.build.copier import Copier
from imagetool.build.dockerfile import parse_files
from imagetool.build.instructions import Run
from imagetool.build.mounts import HostMount, resolve_mounts
from imagetool.build.outputs import RootfsOutput, write_rootfs
from imagetool.build.layerwriter import tar_view, write_layer
from imagetool.build.schedule import OneAtATime, StagePlan
from imagetool.build.rootview import RootView, resolve_owner
from imagetool.build.stages import BuildPlan, Stage, plan
from imagetool.build.stagewalker import CopyWork, RunWork, StageResult, StageWalker, Step, WorkdirWork, at_line
from imagetool.descriptor import Descriptor, Platform
from imagetool.digest import Digest
from imagetool.errors import BuildError, DockerfileError, ImagetoolError, describe
from imagetool.layer.diff import write_diff
from imagetool.layer.unpack import unpack_layer
from imagetool.runtime import cancel
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import chain_ids
from imagetool.tmpdirs import big_temp_dir, spread_children
from imagetool.transports.base import SystemContext

if TYPE_CHECKING:  # the registry client (ssl, http.client) is loaded only for --cache-from/--cache-to
    from imagetool.build.remote_cache import RemoteCache


class StepRunner(Protocol):
    """Runs a RUN step in a container (the embedded runtime, or runc).

    The root filesystem is an overlay of `lowers` (the stage's layer directories, top first,
    overlay whiteouts) with `upper` as its upperdir; `mounts` are resolved RUN --mount
    sources; `work` has argv, env, workdir, user, network and files to place (heredoc
    scripts). Output goes to `output` line by line; returns the exit status.
    """

    def run(self, work: RunWork, lowers: list[Path], upper: Path, mounts: list[HostMount],
            output: Callable[[str], None]) -> int: ...


@dataclass
class BuildOptions:
    """A build: the Dockerfile, its context, the store the image lands in, buildah's flags as fields."""

    dockerfile: Path
    context: Path
    store: LayoutStore
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: manifest annotations (OCI format only: Docker's has no place for them)
    annotations: dict[str, str] = field(default_factory=dict)
    #: variables set in, and names removed from, the image's environment (RUN steps do not see them)
    env: dict[str, str] = field(default_factory=dict)
    unsetenv: list[str] = field(default_factory=list)
    timestamp: int | None = None
    no_cache: bool = False
    oci: bool = True
    compression: str | None = compression.GZIP
    quiet: bool = False
    output: Callable[[str], None] = print
    network: str | None = None        # for RUN steps that do not choose one (--network)
    runner: StepRunner | None = None
    #: FROM/COPY --from images; default: the local store, then a pull (ctx, pull, policy), layers via unpack
    resolver: BaseResolver | None = None
    ctx: SystemContext | None = None
    pull: str = "missing"
    policy: PolicyChecker | None = None
    #: layer directories of base images and cached steps: the store's snapshots unless replaced
    unpack: Unpack | None = snapshot_unpack
    #: upperdir -> layer tar (overlay whiteouts become OCI ones)
    differ: Callable[[Path, BinaryIO, int | None], None] = write_diff
    #: a new step's upperdir, once its layer is committed, moves into the store as that layer's snapshot
    register: Register | None = snapshot_register
    tmpdir: str | None = None
    squash: bool = False
    #: the image's platform (os/arch[/variant]): TARGET* args, base image choice, config; default the host
    platform: str | None = None
    #: a .dockerignore to use instead of the one beside the Dockerfile or in the context
    ignorefile: Path | None = None
    secrets: dict[str, Path | bytes] = field(default_factory=dict)   # --secret id -> file, or an env value
    #: --build-context NAME -> a directory, or docker-image://REF
    contexts: dict[str, str] = field(default_factory=dict)
    #: --cache-from repositories (asked in order when a step misses the local cache) and --cache-to
    cache_from: list[str] = field(default_factory=list)
    cache_to: str | None = None
    #: the image the first FROM builds on instead of its own (buildah's --from)
    from_image: str | None = None
    #: leave the history out of the image's config (buildah's --omit-history)
    omit_history: bool = False
    #: further -f files, read after `dockerfile` as one text (buildah concatenates them in order)
    more_dockerfiles: list[Path] = field(default_factory=list)
    #: -o/--output: the final root filesystem written to directories or tars (under `output_subdir`)
    rootfs_outputs: list[RootfsOutput] = field(default_factory=list)
    output_subdir: str | None = None
    #: how many independent stages may run at once (default: the CPU count); 1 builds them in order
    jobs: int | None = None
    #: build only the stages the target needs (buildah's --skip-unused-stages); off: every stage up to it
    skip_unused_stages: bool = True


@dataclass
class _StageState:
    layers: list[tuple[Descriptor, Digest]] = field(default_factory=list)
    #: layer directories, top last; a cached layer stays a CacheEntry until a later step looks into it
    dirs: list[Path | CacheEntry] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    result: StageResult | None = None
    #: the platform the stage's programs are built for (its base image's), None when unknown
    platform: Platform | None = None
    #: the step numbers of the stage's RUN instructions (an executor is started ahead of them)
    runs: tuple[int, ...] = ()


@dataclass
class BuildResult:
    """The built image: its index entry in the store, its ID (the config digest), how many steps were cached."""

    descriptor: Descriptor
    image_id: Digest
    cache_hits: int
    steps_run: int


class Executor:
    def __init__(self, options: BuildOptions) -> None:
        self.o = options
        if self.o.timestamp is None:
            self.o.timestamp = default_timestamp()
        self.cache = BuildCache(options.store)
        self.stages: dict[int, _StageState] = {}
        self.new_entries: dict[str, CacheEntry] = {}
        self.hits = 0
        self.ran = 0
        self.created = rfc3339(self.o.timestamp)
        self._upper_names = itertools.count()
        #: stages may run on threads at once (schedule.py): what they share is changed under these locks
        self._shared, self._unpacking, self._remote_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._out = options.output
        self.resolver = OneAtATime(options.resolver or StoreResolver(
            options.store, options.ctx or SystemContext(store=str(options.store.root)), options.unpack,
            options.pull, options.policy, self.say))
        #: every step of this build that has a layer, hit or run (what --cache-to records)
        self.layer_steps: dict[str, CacheEntry] = {}
        self.remote: RemoteCache | None = None
        if options.cache_from or options.cache_to:
            from imagetool.build.remote_cache import RemoteCache, cache_repository

            self.remote = RemoteCache(options.store, options.ctx or SystemContext(),
                                      [cache_repository(r) for r in options.cache_from],
                                      cache_repository(options.cache_to) if options.cache_to else None)

    def say(self, text: str) -> None:
        if not self.o.quiet:
            self._out(text)

    def build(self) -> BuildResult:
        for tag in self.o.tags:
            store_name(tag)  # a bad tag fails before any work
        df = parse_files([self.o.dockerfile, *self.o.more_dockerfiles])
        try:
            target = Platform.parse(self.o.platform) if self.o.platform else None
        except ValueError as err:
            raise BuildError(f"--platform: {err}") from err
        self.named = NamedContexts.parse(self.o.contexts)
        p = plan(df, self.o.build_args, self.o.target, target_platform=target, named=self.named.kinds(),
                 first_from=self.o.from_image)
        emulation.check_plan(p, target)  # no emulator for a foreign RUN: fail before the first step
        for warning in p.warnings:
            self.say(f"[Warning] {warning}")
        if p.unused_args:  # buildah's and docker's words, Go's list format
            self.say(f"[Warning] one or more build args were not consumed: [{' '.join(p.unused_args)}]")
        ignore = dockerignore.Matcher.from_text(self.o.ignorefile.read_text()) if self.o.ignorefile else None
        context = BuildContext(self.o.context, self.o.dockerfile, ignore)
        lock = self.o.store.hold_shared()
        try:
            # rootless: in the store's tmp/ (upperdirs can be big; $XDG_RUNTIME_DIR is a small tmpfs)
            with userns.temporary_directory(prefix="imagetool-build-",
                                            dir=big_temp_dir(self.o.tmpdir, self.o.store.root)) as work:
                self.work = Path(work)
                spread_children(work)  # each step's upperdir in a block group of its own (tmpdirs.py)
                stages = StagePlan(p, self.o.skip_unused_stages, self.o.jobs)
                self._out = stages.output(self.o.output)
                try:
                    stages.run(lambda st, prefix: self._stage(p, st, context, prefix))
                finally:
                    self._out = self.o.output
                desc = self._commit(p)
                if self.o.rootfs_outputs:
                    write_rootfs(list(reversed(self._dirs(self.stages[p.target]))), self.o.rootfs_outputs,
                                 self.o.timestamp, self.o.output_subdir, self.work)
            if self.remote is not None and self.remote.target is not None:
                pushed = sum(self.remote.put(key, entry) for key, entry in self.layer_steps.items())
                self.say(f"--> {pushed} step layers recorded in the cache {self.o.cache_to}")
        finally:
            # steps that finished are worth keeping even when a later one failed: fix, rebuild, resume
            self.cache.put_many(self.new_entries)
            getattr(self.o.runner, "close", lambda: None)()  # an executor started ahead for a RUN not run
            lock.release()
        from imagetool.store.images import image_id

        iid = image_id(self.o.store, desc)
        self.say(f"--> {iid.hex[:12]}")
        for tag in self.o.tags:
            self.say(f"Successfully tagged {store_name(tag)}")
        return BuildResult(desc, iid, self.hits, self.ran)

    # -- stages

    def _stage(self, p: BuildPlan, st: Stage, context: BuildContext, prefix: str) -> None:
        state = _StageState()
        salt = f"{self.o.compression}|{self.o.timestamp}|{'oci' if self.o.oci else 'docker'}|{self.o.platform}"
        base_config: dict[str, Any] | None = None
        if st.base_stage is not None:
            parent = self.stages[st.base_stage]
            state.layers, state.dirs = list(parent.layers), list(parent.dirs)
            state.history = list(parent.history)
            state.platform = parent.platform
            key = parent.result.key  # type: ignore[union-attr]
        elif st.is_scratch:
            key = base_key(f"scratch|{salt}", None)
            base_config = {"config": {"Env": [f"PATH={DEFAULT_PATH}"]}}  # as buildah starts a scratch image
            wanted = st.platform or self.o.platform
            state.platform = Platform.parse(wanted) if wanted else None
        else:
            try:
                base = self.resolver.resolve(st.base, st.platform or self.o.platform)
            except ImagetoolError as err:
                raise at_line(p.dockerfile, st.from_) from err
            base_config = base.config
            if base.config.get("architecture"):
                state.platform = Platform(architecture=str(base.config["architecture"]),
                                          os=str(base.config.get("os") or "linux"),
                                          variant=str(base.config.get("variant") or ""))
            state.layers, state.dirs, state.history = list(base.layers), list(base.dirs), list(base.history)
            key = base_key(f"{st.base}|{salt}", base.digest)
        results = {n: s.result for n, s in list(self.stages.items()) if s.result is not None}
        walker = StageWalker(p, st, context, key, base_config, results, named=self.named)
        state.runs = tuple(n for n, i in enumerate((*walker.onbuild, *st.instructions), 2) if isinstance(i, Run))
        self.say(f"{prefix}STEP 1/{walker.total}: {st.from_.original}")
        for step in walker:
            cancel.check()  # another stage failed meanwhile
            self.say(f"{prefix}{step.label}")
            try:
                self._step(step, state, context)
            except DockerfileError:
                raise
            except ImagetoolError as err:
                raise at_line(p.dockerfile, step.instruction) from err
        state.result = walker.result()
        self.stages[st.index] = state

    def _step(self, step: Step, state: _StageState, context: BuildContext) -> None:
        cached = None if self.o.no_cache else self.cache.get(step.key)
        if isinstance(step.work, WorkdirWork) and self._workdir_exists(step.work, state, cached):
            step = dataclasses.replace(step, work=None)  # nothing to make: no layer, as BuildKit
        if step.work is None:
            # cached too, so that a rebuild with nothing changed keeps every time stamp and the digest
            created = cached.created if cached is not None and cached.created else self.created
            if cached is None:
                self.new_entries[step.key] = CacheEntry(None, None, created)
            state.history.append(self._history(step.created_by, empty=True, created=created))
            return
        created = self.created
        if (cached is None or cached.layer is None) and not self.o.no_cache:
            with self._remote_lock:  # one registry conversation at a time, whichever stages run
                cached = self._remote_get(step.key) or cached
        if cached is not None and cached.layer is not None:
            with self._shared:
                self.hits += 1
            self.say(f"--> Using cache {cached.layer.digest.hex[:12]}")
            upper: Path | CacheEntry = cached
            layer, diff_id = cached.layer, cached.diff_id
            created = cached.created or created
        else:
            # a name of its own: ext4 picks a spread directory's block group from a hash of its name
            fresh = upper = self.work / f"layer-{next(self._upper_names)}-{os.urandom(4).hex()}"
            fresh.mkdir()
            if any(n > step.number for n in state.runs):  # the next RUN's executor starts during this step
                getattr(self.o.runner, "prepare", lambda n: None)(2 if isinstance(step.work, RunWork) else 1)
            lowers = list(reversed(self._dirs(state)))
            if isinstance(step.work, RunWork):
                emulation.runnable(state.platform, lowers, step.work)
                self._run(step, lowers, fresh, context)
            elif isinstance(step.work, WorkdirWork):
                work = step.work
                userns.call(lambda: Copier(fresh, lowers).make_workdir(work.path, work.user))
            else:
                self._copy(step.work, lowers, fresh, context)
            layer, diff_id = write_layer(self.o.store, lambda out: self.o.differ(fresh, out, self.o.timestamp),
                                         self.o.compression, self.o.oci)
            with self._shared:
                self.ran += 1
            self.new_entries[step.key] = CacheEntry(layer, diff_id, self.created)
            if self.o.register is not None:
                parent = chain_ids([d for _, d in state.layers])[-1] if state.layers else None
                upper = self.o.register(self.o.store, fresh, diff_id, parent, layer.digest)
        self.layer_steps[step.key] = CacheEntry(layer, diff_id, created)  # type: ignore[arg-type]
        state.layers.append((layer, diff_id))  # type: ignore[arg-type]
        state.dirs.append(upper)
        state.history.append(self._history(step.created_by, empty=False, created=created))

    def _workdir_exists(self, work: WorkdirWork, state: _StageState, cached: CacheEntry | None) -> bool:
        if cached is not None:
            return cached.layer is None
        view = RootView(list(reversed(self._dirs(state))))
        return userns.call(view.is_dir, work.path)

    def _remote_get(self, key: str) -> CacheEntry | None:
        """A --cache-from hit (its layer now in the store, and remembered locally), or None. A repository
        that cannot be read is reported once and then left alone: the cache only saves work."""
        if self.remote is None or not self.remote.sources:
            return None
        try:
            entry = self.remote.get(key)
        except ImagetoolError as err:
            self.say(f"[Warning] --cache-from: {describe(err)}; building without it")
            self.remote.sources = []
            return None
        if entry is not None:
            self.new_entries[key] = entry
        return entry

    def _run(self, step: Step, lowers: list[Path], upper: Path, context: BuildContext) -> None:
        if self.o.runner is None:
            raise BuildError("RUN needs the container runtime, which this build has no access to")
        work = step.work
        assert isinstance(work, RunWork)
        if work.network == "default" and self.o.network:
            work = dataclasses.replace(work, network=self.o.network)
        mounts = resolve_mounts(
            work.mounts, context=context, store_root=Path(self.o.store.root),
            stage_layers={n: self._dirs(s) for n, s in list(self.stages.items())},
            image_layers={m.from_image: self.resolver.resolve(m.from_image, None).dirs
                          for m in work.mounts if m.from_image},
            secrets=self.o.secrets, named=self.named.dirs, user_ids=self._user_ids(work, lowers),
            root_layers=tuple(lowers))
        code = self.o.runner.run(work, lowers, upper, mounts, self.say)  # -q hides it, as buildah does
        if code != 0:
            raise BuildError(f"the command exited with status {code}")

    @staticmethod
    def _user_ids(work: RunWork, lowers: list[Path]) -> tuple[int, int]:
        """The RUN user's ids (from the image's passwd), which a --mount with U hands its files to."""
        if not work.user or not any(m.chown for m in work.mounts):
            return (0, 0)
        return userns.call(resolve_owner, RootView(lowers), work.user)

    def _copy(self, work: CopyWork, lowers: list[Path], upper: Path, context: BuildContext) -> None:
        source = None
        if work.from_stage is not None:
            source = RootView(list(reversed(self._dirs(self.stages[work.from_stage]))))
        elif work.from_image is not None:
            source = RootView(list(reversed(self.resolver.resolve(work.from_image, None).dirs)))
        where = self.named.dirs[work.from_context] if work.from_context else context
        # rootless, inside the store's user namespace: owners (--chown, a stage's) are then container ids
        userns.call(lambda: Copier(upper, lowers).copy(work, where, source))

    def _dirs(self, state: _StageState) -> list[Path]:
        """The stage's layer directories, unpacking cached layers the first time they are needed."""
        if any(not isinstance(d, Path) for d in state.dirs):
            with self._unpacking:  # a finished stage's may be asked for by two stages at once
                state.dirs = [d if isinstance(d, Path) else self._unpack_cached(state, i, d)
                              for i, d in enumerate(state.dirs)]
        return state.dirs  # type: ignore[return-value]

    def _unpack_cached(self, state: _StageState, index: int, entry: CacheEntry) -> Path:
        """A cached layer as a directory, for the steps after it: its snapshot (the stack up to it)."""
        if self.o.unpack is not None:
            return self.o.unpack(self.o.store, state.layers[:index + 1])[-1]
        target = self.work / f"cached-{entry.diff_id.hex[:16]}"  # type: ignore[union-attr]
        if target.exists():
            return target
        target.mkdir()
        with self.o.store.open_blob(entry.layer.digest) as raw:  # type: ignore[union-attr]
            unpack_layer(raw, target)
        return target

    def _history(self, created_by: str, empty: bool, created: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        return entry

    # -- commit

    def _squash(self, state: _StageState) -> tuple[list[tuple[Descriptor, Digest]], list[dict[str, Any]]]:
        """--squash: every layer, the base image's included, merged into one (as buildah does)."""
        view = RootView(list(reversed(self._dirs(state))))
        stamp = self.o.timestamp
        layer = write_layer(self.o.store, lambda out: userns.produce(lambda o: tar_view(view, o, stamp), out),
                            self.o.compression, self.o.oci)
        history = [{**h, "empty_layer": True} for h in state.history]
        if history:
            history[-1].pop("empty_layer")
        else:
            history = [self._history("squash", empty=False, created=self.created)]
        return [layer], history

    def _commit(self, p: BuildPlan) -> Descriptor:
        state = self.stages[p.target]
        result = state.result
        assert result is not None
        config = dict(result.state.config)
        if not self.o.oci and (result.state.shell_set or result.state.shell != DEFAULT_SHELL):
            config["Shell"] = list(result.state.shell)  # only Docker's config format has a place for it
        if self.o.labels:
            config["Labels"] = {**(config.get("Labels") or {}), **self.o.labels}
        if self.o.env or self.o.unsetenv:
            final = ConfigState(config)
            for key, value in self.o.env.items():
                final.set_env(key, value)
            config["Env"] = [e for e in config.get("Env") or [] if e.partition("=")[0] not in self.o.unsetenv]
        # the newest step's time: a build served wholly from the cache recreates the same image
        created = state.history[-1]["created"] if state.history and self.ran == 0 else self.created
        layers, history = state.layers, state.history
        if self.o.squash:
            layers, history = self._squash(state)
        if self.o.omit_history:
            history = []
        parts = ImageParts(config, layers, history, result.state.author, created=created,
                           platform=Platform.parse(self.o.platform) if self.o.platform else None)
        self.say(f"COMMIT {', '.join(store_name(t) or '' for t in self.o.tags)}".rstrip())
        return commit(self.o.store, parts, self.o.tags, self.o.oci, self.o.annotations)


def build(options: BuildOptions) -> BuildResult:
    """Build the Dockerfile in `options`; the image lands in options.store, named by options.tags."""
    return Executor(options).build()
