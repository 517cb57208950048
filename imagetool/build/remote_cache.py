"""buildah's --cache-to / --cache-from: step layers kept in a registry repository, tagged by step key.

Each cached step is a small OCI manifest at REPO:<step key> whose config (our own media type)
records the layer's diff_id and creation time and whose one layer is the step's layer blob. A
build that misses its local cache asks the repository before it runs a step; a hit fetches the
layer (verified against its digest) into the local store, and the step is not run. Steps that
only edit the config are not cached remotely.
"""

from __future__ import annotations

import io
import json
from typing import Any

from imagetool import media
from imagetool.build.cache import CacheEntry
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, read_full
from imagetool.errors import BuildError, ImagetoolError, NotFound
from imagetool.manifest import Manifest, parse_manifest
from imagetool.reference import DockerReference
from imagetool.reference import parse as parse_reference
from imagetool.registry.upload import BlobUploader
from imagetool.store.layout import LayoutStore
from imagetool.transports.base import SystemContext

CONFIG_TYPE = "application/vnd.imagetool.build-cache.config.v1+json"
MAX_CONFIG = 64 << 10


def cache_repository(text: str) -> DockerReference:
    """A --cache-to/--cache-from value: a repository (docker:// optional), without tag or digest."""
    ref = parse_reference(text.removeprefix("docker://"))
    if ref.tag is not None or ref.digest is not None:
        raise BuildError(f"cache repository {text!r}: give a repository, without a tag or digest")
    return ref


class RemoteCache:
    """Step layers in the repositories `sources` (read, in order) and `target` (written)."""

    def __init__(self, store: LayoutStore, ctx: SystemContext, sources: list[DockerReference],
                 target: DockerReference | None) -> None:
        from imagetool.transports.docker import make_client

        self.store = store
        self.sources = [(repo, make_client(repo, ctx)) for repo in sources]
        self.target = (target, make_client(target, ctx)) if target is not None else None

    def get(self, key: str) -> CacheEntry | None:
        """The step's layer from the first source that has it, fetched into the store; None on a miss."""
        for repo, client in self.sources:
            try:
                raw, media_type = client.get_manifest(repo.path, key)
            except NotFound:
                continue
            manifest = parse_manifest(raw, media_type)
            if manifest.config.media_type != CONFIG_TYPE or len(manifest.layers) != 1:
                continue
            try:
                record = json.loads(_read_small(client, repo, manifest.config))
                diff_id = Digest.parse(record["diff_id"])
            except (ValueError, KeyError, TypeError, ImagetoolError) as err:
                raise BuildError(f"build cache {repo.name}:{key[:12]}: unusable record ({err})") from err
            layer = manifest.layers[0]
            if not self.store.has_blob(layer.digest):
                with client.get_blob(repo.path, layer.digest, layer.size) as reader:
                    self.store.put_blob(reader, layer.digest, layer.size)
            return CacheEntry(layer, diff_id, record.get("created"))
        return None

    def put(self, key: str, entry: CacheEntry) -> bool:
        """Record a step's layer at TARGET:<key>; False when it is there already."""
        if self.target is None or entry.layer is None or entry.diff_id is None:
            return False
        repo, client = self.target
        if client.head_manifest(repo.path, key) is not None:
            return False
        record = json.dumps({"diff_id": str(entry.diff_id), "created": entry.created}, sort_keys=True).encode()
        config = Descriptor(CONFIG_TYPE, Digest.of(record), len(record))
        layer = entry.layer.with_(media_type=media.convert_type(entry.layer.media_type, True), annotations={})
        if client.head_blob(repo.path, layer.digest) is None:
            with self.store.open_blob(layer.digest) as blob:
                BlobUploader(client, repo.path).upload(blob, layer.digest, layer.size)
        if client.head_blob(repo.path, config.digest) is None:
            BlobUploader(client, repo.path).upload(io.BytesIO(record), config.digest, config.size)
        manifest = Manifest.build(media.OCI_MANIFEST, config, [layer])
        client.put_manifest(repo.path, key, manifest.raw, manifest.media_type)
        return True


def _read_small(client: Any, repo: DockerReference, desc: Descriptor) -> bytes:
    if desc.size > MAX_CONFIG:
        raise ImagetoolError(f"the record is {desc.size} bytes (at most {MAX_CONFIG})")
    with client.get_blob(repo.path, desc.digest, desc.size) as reader:
        data = read_full(reader, desc.size + 1)
    if Digest.of(data) != desc.digest:
        raise ImagetoolError("the record does not match its digest")
    return data
