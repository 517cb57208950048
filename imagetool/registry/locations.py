"""Where blobs were seen: registry host -> digest -> repositories (a persistent cache file).

A later copy to the same registry mounts a blob from any repository listed here instead of
uploading it. The file lives under $XDG_CACHE_HOME/imagetool/; it is a hint only, so losing
it (or reading a stale entry) costs an upload, never correctness.

A batch of copies (sync) holds the cache (`held()`): each copy's save is then put off, and the
file is merged and rewritten once when the batch ends, not once per image.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from imagetool.cachedir import user_cache

MAX_REPOS = 8
#: the whole file, every host together: each docker command that mounts parses it, so it stays small
#: (~0.5 MiB); the least recently seen hosts and digests go first
MAX_DIGESTS = 5000


def cache_path() -> Path:
    return user_cache("blob-locations.json")


class BlobLocations:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, list[str]]] | None = None
        self._added: list[tuple[str, str, str]] = []
        self._holds = 0

    def _load_file(self) -> dict[str, dict[str, list[str]]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _data_now(self) -> dict[str, dict[str, list[str]]]:
        if self._data is None:
            self._data = self._load_file()
        return self._data

    @staticmethod
    def _add(data: dict[str, dict[str, list[str]]], host: str, digest: str, repo: str) -> None:
        """Record `repo` first for `digest`; the host and the digest move to the end (most recent)."""
        digests = data.pop(host, {})
        data[host] = digests
        repos = digests.pop(digest, [])
        digests[digest] = repos
        if repo in repos:
            repos.remove(repo)
        repos.insert(0, repo)
        del repos[MAX_REPOS:]

    @staticmethod
    def _trim(data: dict[str, dict[str, list[str]]]) -> None:
        """Keep the MAX_DIGESTS most recently seen digests of all hosts together."""
        excess = sum(map(len, data.values())) - MAX_DIGESTS
        for host in list(data):
            if excess <= 0:
                break
            digests = data[host]
            if len(digests) <= excess:
                excess -= len(digests)
                del data[host]
            else:
                for digest in list(digests)[:excess]:
                    del digests[digest]
                excess = 0

    def record(self, host: str, repo: str, digest: str) -> None:
        with self._lock:
            data = self._data_now()
            known = repo in data.get(host, {}).get(digest, ())
            self._add(data, host, digest, repo)
            if not known:  # only news is written back: a repeated copy or inspect leaves the file alone
                self._added.append((host, digest, repo))

    def candidates(self, host: str, digest: str) -> list[str]:
        with self._lock:
            return list(self._data_now().get(host, {}).get(digest, []))

    @contextmanager
    def held(self) -> Iterator[None]:
        """Saves are put off until the outermost hold ends, then done once."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
            self.save()

    def save(self) -> None:
        """Merge what this process learnt into the file (under a lock; atomic replace)."""
        with self._lock:
            if not self._added or self._holds:
                return
            added, self._added = self._added, []
        # the writer holds the lock file: a name of its own beside the file is enough (no tempfile module,
        # whose import costs a small copy more than this save)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(self.path) + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = self._load_file()
                for host, digest, repo in added:
                    self._add(data, host, digest, repo)
                self._trim(data)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json.dumps(data))  # json.dump encodes in Python, dumps in C
                os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            # a cache: failing to write it must not fail a copy


_shared: BlobLocations | None = None
_shared_lock = threading.Lock()


def shared() -> BlobLocations:
    global _shared
    with _shared_lock:
        if _shared is None or _shared.path != cache_path():
            _shared = BlobLocations()
        return _shared
