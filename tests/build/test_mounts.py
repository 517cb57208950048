"""RUN --mount resolution: context binds stay inside the context, caches persist, secrets are checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagetool.build.context import BuildContext
from imagetool.build.dockerfile import parse
from imagetool.build.mounts import CACHE_MOUNTS, parse_secrets, resolve_mounts
from imagetool.build.stages import plan
from imagetool.build.stagewalker import StageResult, StageWalker
from imagetool.errors import BuildError, UnsafeContent, describe


def run_mounts(text: str, ctx: Path, store: Path, secrets: dict[str, Path] | None = None):  # type: ignore
    p = plan(parse(text))
    results: dict[int, StageResult] = {}
    work = None
    for n in p.needed:
        w = StageWalker(p, p.stages[n], BuildContext(ctx), "k", None, results)
        for step in w:
            work = step.work
        results[n] = w.result()
    return resolve_mounts(work.mounts, context=BuildContext(ctx), store_root=store,  # type: ignore[union-attr]
                          stage_layers={0: [Path("/l0"), Path("/l1")]}, image_layers={}, secrets=secrets or {})


def test_mount_kinds(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    text = ("FROM scratch AS deps\nFROM scratch\nRUN --mount=type=bind,source=sub,target=/src "
            "--mount=type=bind,from=deps,source=/opt,target=/deps,rw --mount=type=cache,id=a/b,target=/c "
            "--mount=type=secret,id=tok --mount=type=tmpfs,target=/t,size=2m true\n")
    ctxm, stage, cache, sec, tmpfs = run_mounts(text, ctx, tmp_path / "store", {"tok": secret})
    assert (ctxm.path, ctxm.readonly) == (ctx.resolve() / "sub", True)
    assert (stage.layers, stage.subpath, stage.readonly) == ((Path("/l1"), Path("/l0")), "/opt", False)
    assert cache.path == tmp_path / "store" / CACHE_MOUNTS / "a_b" and cache.path.is_dir()
    assert (sec.path, sec.target, sec.readonly, sec.options["mode"]) == (secret, "/run/secrets/tok", True, 0o400)
    assert (tmpfs.type, tmpfs.size) == ("tmpfs", 2 << 20)


def test_context_bind_cannot_leave_the_context(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    with pytest.raises(BuildError) as info:
        run_mounts("FROM scratch\nRUN --mount=type=bind,source=../..,target=/x true\n", tmp_path / "ctx",
                   tmp_path / "store")
    assert isinstance(info.value.__cause__, UnsafeContent)
    assert "Dockerfile:2: RUN --mount=type=bind,source=../..,target=/x true: forbidden path outside the build " \
        "context" in describe(info.value)


def test_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ctx").mkdir()
    with pytest.raises(BuildError, match="secret 'tok' is required"):
        run_mounts("FROM scratch\nRUN --mount=type=secret,id=tok,required true\n", tmp_path / "ctx",
                   tmp_path / "store")
    assert run_mounts("FROM scratch\nRUN --mount=type=secret,id=tok true\n", tmp_path / "ctx",
                      tmp_path / "store") == []
    f = tmp_path / "f"
    f.write_text("x")
    assert parse_secrets([f"id=a,src={f}", f"id=b,source={f},type=file"]) == {"a": f, "b": f}
    monkeypatch.setenv("SECRET_VAR", "value")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    assert parse_secrets(["id=a,env=SECRET_VAR", "id=b,src=SECRET_VAR,type=env"]) == {"a": b"value", "b": b"value"}
    for bad in ("id=a", f"src={f}", "id=a,src=/nonexistent", f"id=a,src={f},type=env", "id=a,env=UNSET_VAR",
                f"id=a,src={f},type=ssh"):
        with pytest.raises(BuildError):
            parse_secrets([bad])


def test_rw_context_binds_never_reach_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "f").write_text("x")
    os.chmod(ctx / "f", 0o604)
    text = ("FROM scratch\nRUN --mount=type=bind,source=sub,target=/d,rw "
            "--mount=type=bind,source=f,target=/f,rw true\n")
    directory, single = run_mounts(text, ctx, tmp_path / "store")
    assert (directory.path, directory.layers, directory.readonly) == (None, (ctx.resolve() / "sub",), False)
    assert single.path == ctx.resolve() / "f" and single.options["mode"] == 0o604   # copied before the run
