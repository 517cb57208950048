"""`build --platform A,B,...`: one build per platform, at most `jobs` at a time, checked all together first.

Every platform's build is checked before any starts (each stage's RUN steps need this machine's
CPU or a registered emulator), so a two-platform build that cannot do its second platform
builds nothing. The builds then run in threads: their work is containers and compression,
outside the interpreter lock, and each keeps its own Executor. While more than one runs, each
output line is prefixed with its platform, so the interleaved log stays readable.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from imagetool.build.context import NamedContexts
from imagetool.build.dockerfile import parse_files
from imagetool.build.emulation import check_plan
from imagetool.build.executor import BuildOptions, BuildResult, build
from imagetool.build.schedule import cpu_count
from imagetool.build.stages import plan
from imagetool.descriptor import Platform
from imagetool.errors import BuildError


def check(options: BuildOptions) -> None:
    """Refuse now, in one line, a platform's build whose RUN steps this machine cannot execute."""
    try:
        target = Platform.parse(options.platform) if options.platform else None
    except ValueError as err:
        raise BuildError(f"--platform: {err}") from err
    dockerfile = parse_files([options.dockerfile, *options.more_dockerfiles])
    p = plan(dockerfile, options.build_args, options.target, target_platform=target,
             named=NamedContexts.parse(options.contexts).kinds(), first_from=options.from_image)
    check_plan(p, target)


def build_platforms(options_for: Callable[[str], BuildOptions], platforms: list[str], jobs: int | None = None,
                    announce: Callable[[str], None] | None = None) -> list[BuildResult]:
    """Build each platform (options_for(platform) says how), at most `jobs` at once; results in order.

    When one platform's build fails, the others still running finish (their layers stay cached) and
    the first failure, in platform order, is raised."""
    every = [options_for(p) for p in platforms]
    for options in every:
        check(options)
    limit = max(1, min(jobs or cpu_count(), len(every)))
    if limit == 1:
        results = []
        for platform, options in zip(platforms, every, strict=True):
            if announce is not None:
                announce(f"[{platform}]")
            results.append(build(options))
        return results
    lock = threading.Lock()

    def prefixed(platform: str, options: BuildOptions) -> BuildOptions:
        inner = options.output

        def output(line: str) -> None:
            with lock:
                inner(f"[{platform}] {line}")
        return dataclasses.replace(options, output=output)

    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="platform") as pool:
        futures = [pool.submit(build, prefixed(p, o)) for p, o in zip(platforms, every, strict=True)]
        errors = [f.exception() for f in futures]
    failed = next((e for e in errors if e is not None), None)
    if failed is not None:
        raise failed
    return [f.result() for f in futures]
