"""Which stages a build runs, and in what order: independent ones at the same time, up to --jobs.

BuildKit's rule, which buildah follows with --skip-unused-stages (its default): a stage is built
only if the target (the last stage, or --target) reaches it through FROM <stage>, COPY --from or
RUN --mount from=. A stage starts once every stage it depends on is done; stages that do not
reach each other run on threads of their own, at most `jobs` at once (each RUN step is a
container process of its own, so threads suffice). When one fails, the cancellation token of
imagetool.runtime.cancel kills what the others are running, every thread is waited for (so
their containers and temporary directories are gone), and the first failure is raised: the
build stops as a sequential one does, and nothing is committed.

With one stage at a time (--jobs 1, or a graph where every stage needs the one before), the
stages run in order on the calling thread, exactly as a sequential build prints and behaves.
When stages may overlap, every line a stage's thread prints starts with `[NAME] ` (its name, or
its index), so interleaved output stays readable.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from imagetool.build.base import BaseImage, BaseResolver
from imagetool.build.stages import BuildPlan, Stage
from imagetool.errors import BuildError
from imagetool.runtime import cancel

#: signals that end a parallel build cleanly (SIGINT arrives as KeyboardInterrupt)
STOPPING = (signal.SIGTERM, signal.SIGHUP)


def cpu_count() -> int:
    """The CPUs this process may run on: --jobs' default."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def stages_to_build(p: BuildPlan, skip_unused: bool = True) -> tuple[int, ...]:
    """The needed stages; with `skip_unused` off, every stage up to the target (buildah drops the later ones)."""
    return p.needed if skip_unused else tuple(range(p.target + 1))


def dependencies(p: BuildPlan, stages: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Each stage to build -> the stages it needs done first (its FROM stage, its --from stages)."""
    out = {}
    for n in stages:
        st = p.stages[n]
        direct = ([st.base_stage] if st.base_stage is not None else []) + list(st.stage_deps)
        out[n] = tuple(sorted(set(direct)))
    return out


def may_overlap(deps: Mapping[int, Sequence[int]]) -> bool:
    """Whether two of the stages could run at once: some pair where neither reaches the other."""
    reach: dict[int, set[int]] = {}
    for n in sorted(deps):  # a stage depends on earlier ones only
        reach[n] = set(deps[n]).union(*(reach.get(d, set()) for d in deps[n]))
    order = sorted(deps)
    return any(a not in reach[b] for i, a in enumerate(order) for b in order[i + 1:])


class StageLines:
    """The build's output while stages run at once: one line at a time, each with its stage's prefix."""

    def __init__(self, output: Callable[[str], None]) -> None:
        self.output = output
        self._lock = threading.Lock()
        self._local = threading.local()

    def __call__(self, line: str) -> None:
        prefix = getattr(self._local, "prefix", "")
        with self._lock:
            self.output(prefix + line)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._local.prefix = f"[{name}] "
        try:
            yield
        finally:
            self._local.prefix = ""


class StagePlan:
    """The stages of one build, how they depend on each other, and how many may run at once."""

    def __init__(self, p: BuildPlan, skip_unused: bool = True, jobs: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise BuildError(f"--jobs {jobs}: at least one stage must be able to run")
        self.plan = p
        self.order = stages_to_build(p, skip_unused)
        self.deps = dependencies(p, self.order)
        self.jobs = jobs or cpu_count()
        #: stages may run at the same time: output lines carry their stage's name
        self.parallel = self.jobs > 1 and may_overlap(self.deps)
        self.lines: StageLines | None = None

    def output(self, output: Callable[[str], None]) -> Callable[[str], None]:
        """Where the build should print: `output` itself, or (parallel) a prefixing StageLines over it."""
        if not self.parallel:
            return output
        self.lines = StageLines(output)
        return self.lines

    def run(self, build_stage: Callable[[Stage, str], None]) -> None:
        """build_stage(stage, prefix) for every stage, dependencies first; `prefix` is buildah's
        `[2/3] ` of a sequential multi-stage build, empty when stages run at once."""
        if not self.parallel:
            for position, n in enumerate(self.order, 1):
                build_stage(self.plan.stages[n], f"[{position}/{len(self.order)}] " if len(self.order) > 1 else "")
            return
        lines = self.lines

        def one(n: int) -> None:
            st = self.plan.stages[n]
            if lines is None:
                build_stage(st, "")
                return
            with lines.stage(st.ref):
                build_stage(st, "")

        run_concurrently(self.deps, self.jobs, one)


class _Stopped(BaseException):
    """A stopping signal arrived while stages were running."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def run_concurrently(deps: Mapping[int, Sequence[int]], jobs: int, run: Callable[[int], None]) -> None:
    """run(n) for each n in `deps` on a thread of its own once deps[n] are done, at most `jobs` at a time
    (the lowest-numbered ready stage first). The first failure (or an interrupt) cancels the rest; it is
    raised once every thread has ended."""
    token = cancel.Token()
    cond = threading.Condition()
    done: set[int] = set()
    running: dict[int, threading.Thread] = {}
    failure: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with cancel.scope(token):
                cancel.check()
                run(n)
        except BaseException as err:  # noqa: BLE001 - handed to the scheduling thread
            with cond:
                if not failure and not token.cancelled:
                    failure.append(err)
            token.cancel()
        finally:
            with cond:
                done.add(n)
                running.pop(n, None)
                cond.notify_all()

    pending = sorted(deps)
    with _stopping_signals():
        try:
            with cond:
                while (pending or running) and not failure:
                    ready = [n for n in pending if all(d in done for d in deps[n])]
                    for n in ready[: max(0, jobs - len(running))]:
                        pending.remove(n)
                        thread = threading.Thread(target=work, args=(n,), name=f"stage-{n}", daemon=True)
                        running[n] = thread
                        thread.start()
                    if running:
                        cond.wait()
                    elif pending:  # nothing runs and nothing can start: a dependency outside the plan
                        raise BuildError(f"stages {pending} wait for stages that are not built")
            _wait_all(running, cond)
        except BaseException as err:
            token.cancel()
            _wait_all(running, cond)
            if isinstance(err, _Stopped):
                stopped = BuildError(f"build stopped by {signal.Signals(err.number).name}")
                stopped.exit_code = 128 + err.number
                raise stopped from None  # the signal marker is how it stopped, said in the message
            raise
    if failure:
        raise failure[0]


def _wait_all(running: Mapping[int, threading.Thread], cond: threading.Condition) -> None:
    """Wait for every started thread; each ends soon once the token is cancelled."""
    while True:
        with cond:
            threads = list(running.values())
        if not threads:
            return
        for thread in threads:
            thread.join(0.1)


@contextmanager
def _stopping_signals() -> Iterator[None]:
    """SIGTERM/SIGHUP end a parallel build cleanly (containers killed, temporary files removed) instead of
    the process; only the main thread may set handlers, elsewhere nothing changes."""
    previous: dict[int, Any] = {}

    def stop(number: int, _frame: object) -> None:
        raise _Stopped(number)

    try:
        for number in STOPPING:
            previous[number] = signal.signal(number, stop)
    except ValueError:
        pass
    try:
        yield
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)


class OneAtATime:
    """A BaseResolver shared by stages that run at once: each image is resolved (and pulled) by one of
    them while the others wait for that result, instead of all pulling it side by side."""

    def __init__(self, inner: BaseResolver) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._each: dict[tuple[str, str | None], threading.Lock] = {}

    def resolve(self, image: str, platform: str | None) -> BaseImage:
        with self._lock:
            lock = self._each.setdefault((image, platform), threading.Lock())
        with lock:
            return self.inner.resolve(image, platform)
