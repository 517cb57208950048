"""The executor of a later RUN started ahead, while the steps before it run (ContainerStepRunner.prepare).

Real builds in the embedded runtime: every helper started is counted; the RUN steps must run
in helpers started ahead (none started late), and none may outlive the build, whether its
RUN steps all ran or a failing one left the prepared helper unused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.build.executor import BuildOptions, build
from imagetool.build.runstep import ContainerStepRunner
from imagetool.errors import ImagetoolError
from imagetool.runtime import prestart
from imagetool.store import default_store_path
from imagetool.store.layout import LayoutStore
from tests.build.test_run_steps import BASE, base_image


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[prestart.Helper]:
    helpers: list[prestart.Helper] = []
    real = prestart.spawn

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        helper = real(*args, **kwargs)
        helpers.append(helper)
        return helper

    monkeypatch.setattr(prestart, "spawn", counting)
    return helpers


def _build(tmp_path: Path, dockerfile: str, lines: list[str]) -> None:
    base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "one.txt").write_text("one\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    store = LayoutStore.create(default_store_path())
    build(BuildOptions(dockerfile=ctx / "Dockerfile", context=ctx, store=store, tags=["ahead"], no_cache=True,
                       pull="never", runner=ContainerStepRunner(), output=lines.append))


def test_each_run_takes_the_executor_started_during_the_step_before(
        tmp_path: Path, local_store: Path, spawned: list[prestart.Helper]) -> None:
    lines: list[str] = []
    _build(tmp_path, f"FROM {BASE}\nCOPY one.txt /one\nRUN cat /one > /two && echo first\n"
                     "ENV X=1\nRUN cat /two && echo second $X\n", lines)
    assert "first" in lines and "one" in lines and "second 1" in lines  # both RUNs ran, in order
    # one started during the COPY, one during the first RUN: none when a RUN began
    assert len(spawned) == 2
    assert all(h.proc.returncode == 0 for h in spawned)  # each ran its container to the end
    assert prestart._waiting == []


def test_an_executor_started_for_a_run_that_never_comes_is_ended(
        tmp_path: Path, local_store: Path, spawned: list[prestart.Helper]) -> None:
    with pytest.raises(ImagetoolError, match="RUN exit 3") as failed:
        _build(tmp_path, f"FROM {BASE}\nRUN exit 3\nRUN echo never\n", [])
    assert "exited with status 3" in str(failed.value.__cause__)
    assert len(spawned) == 2  # the failing RUN's and the one started for the RUN after it
    assert spawned[0].proc.returncode == 3
    assert spawned[1].proc.returncode == -9  # killed and reaped, never given a container
    assert prestart._waiting == []
