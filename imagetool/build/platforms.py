"""`build --all-platforms`: every platform each base image of the build offers (buildah's rule).

The base images of the stages a build needs are looked at where a pull would fetch them (a
registry for a bare name, else the named transport; a bare name only in the local store when no
registry answers); an index offers its entries' platforms, a single image its config's. The
build is for the platforms every base offers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagetool.build.base import local_name
from imagetool.build.stages import BuildPlan
from imagetool.descriptor import Platform, normalized
from imagetool.errors import BuildError, ImagetoolError
from imagetool.manifest import ImageConfig, Index, parse
from imagetool.transports import SystemContext


def offered(image: str, ctx: SystemContext) -> list[Platform]:
    """The platforms `image` offers."""
    ref, source = local_name(image)
    last: ImagetoolError | None = None
    for where in ([source, ref] if source is not ref else [ref]):
        try:
            return _platforms_of(where, ctx)
        except ImagetoolError as err:
            last = err
    raise BuildError(f"--all-platforms: cannot read the base image {image!r}").citing_cause() from last


def _platforms_of(ref: Any, ctx: SystemContext) -> list[Platform]:
    src = ref.open_source(ctx)
    try:
        raw, mt = src.get_manifest()
        doc = parse(raw, mt)
        if isinstance(doc, Index):
            return [d.platform for d in doc.manifests if d.platform is not None and d.platform.os != "unknown"]
        config = ImageConfig.parse(_read(src, doc.config))
        arch, os_ = config.doc.get("architecture"), config.doc.get("os")
        return [Platform(architecture=str(arch), os=str(os_), variant=str(config.doc.get("variant") or ""))] \
            if arch and os_ else []
    finally:
        src.close()


def _read(src: Any, desc: Any) -> bytes:
    with src.get_blob(desc) as stream:
        return stream.read()  # type: ignore[no-any-return]


def all_platforms(p: BuildPlan, ctx: SystemContext, say: Callable[[str], None] | None = None) -> list[str]:
    """The platforms every base image of the needed stages offers, in the first base's order."""
    common: list[str] | None = None
    for n in p.needed:
        st = p.stages[n]
        if st.base_stage is not None or st.is_scratch or st.platform:
            continue  # FROM a stage, FROM scratch, FROM --platform=...: no choice to make
        names = [str(pl) for pl in offered(st.base, ctx)]
        same = {_key(n) for n in names}
        common = names if common is None else [n for n in common if _key(n) in same]
    if common is None:
        raise BuildError("--all-platforms: the build has no base image to take platforms from")
    if not common:
        raise BuildError("--all-platforms: the base images have no platform in common")
    return list(dict.fromkeys(common))


def _key(name: str) -> str:
    """A platform's normal form (arm64/v8 is arm64, as containerd compares them)."""
    try:
        return str(normalized(Platform.parse(name)))
    except ValueError:
        return name
