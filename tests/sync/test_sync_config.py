"""The sync YAML as typed settings: skopeo's format, its type checks at every level, its tolerance of unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.errors import ConfigError
from imagetool.sync import config
from imagetool.sync.config import Credentials, RegistrySync, SyncConfig
from imagetool.sync.jobs import yaml_jobs
from imagetool.transports.base import SystemContext

FULL = """
registry.example.com:
  images:
    busybox: []
    redis:
      - "1.0"
      - 1.10
      - sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  images-by-tag-regex:
    nginx: ^1\\.13\\.
  credentials:
    username: john
    password: a secret
  tls-verify: false
  cert-dir: /home/john/certs
quay.io:
  tls-verify: yes
  images:
    coreos/etcd: [latest, 3, true]
"""


def test_skopeos_example_as_typed_settings() -> None:
    parsed = config.parse(FULL, "sync.yml")
    first, second = parsed.registries
    assert first.registry == "registry.example.com"
    assert dict(first.images) == {"busybox": (), "redis": ("1.0", "1.10", "sha256:" + "0123456789abcdef" * 4)}
    assert {repo: rx.pattern for repo, rx in first.images_by_tag_regex.items()} == {"nginx": "^1\\.13\\."}
    assert first.credentials == Credentials("john", "a secret")
    assert (first.tls_verify, first.cert_dir) == (False, "/home/john/certs")
    # scalars keep the file's text, as Go decodes them into strings: 3 -> "3", true -> "true"
    assert second == RegistrySync("quay.io", {"coreos/etcd": ("latest", "3", "true")}, tls_verify=True)


def test_registry_settings_on_top_of_the_flags() -> None:
    base = SystemContext(tls_verify=True, cert_dir="/flags/certs", creds=("flag", "pw"))
    first, second = config.parse(FULL).registries
    ctx = first.system_context(base)
    assert (ctx.tls_verify, ctx.cert_dir, ctx.creds) == (False, "/home/john/certs", ("john", "a secret"))
    ctx = second.system_context(base)
    assert (ctx.tls_verify, ctx.cert_dir, ctx.creds) == (True, "/flags/certs", ("flag", "pw"))
    # an empty tls-verify, cert-dir or username leaves the flags' setting
    empty = config.parse("r.example:\n  tls-verify:\n  cert-dir:\n  credentials: {password: x}\n").registries[0]
    assert empty.system_context(base) == base


def test_named_tags_make_one_job_each_without_a_registry() -> None:
    jobs = yaml_jobs(config.parse("127.0.0.1:1:\n  images:\n    a/b: [v1, 1.10, 'sha256:" + "ab" * 32 + "']\n"),
                     SystemContext())
    assert [(j.source, j.name, j.tag) for j in jobs] == [
        ("docker://127.0.0.1:1/a/b:v1", "127.0.0.1:1/a/b", "v1"),
        ("docker://127.0.0.1:1/a/b:1.10", "127.0.0.1:1/a/b", "1.10"),
        (f"docker://127.0.0.1:1/a/b@sha256:{'ab' * 32}", "127.0.0.1:1/a/b", f"@sha256:{'ab' * 32}")]


@pytest.mark.parametrize("text", ["", "\n", "~\n", "# nothing\n"])
def test_an_empty_file_names_nothing(text: str) -> None:
    assert config.parse(text) == SyncConfig()


@pytest.mark.parametrize("text", [
    "r.example:\n",                                         # a registry with nothing under it
    "r.example:\n  images:\n",                               # empty images
    "r.example:\n  imagez:\n    busybox: [latest]\n",       # a misspelt key: ignored, as skopeo ignores it
    "r.example:\n  images-by-semver:\n    busybox: '>= 1'\n",  # a newer skopeo's key: ignored
    "r.example:\n  credentials: {user: x}\n",               # an unknown credentials key
])
def test_what_skopeo_accepts_and_ignores(text: str) -> None:
    parsed = config.parse(text)
    assert [r.registry for r in parsed.registries] == ["r.example"]
    assert not parsed.registries[0].images


#: a malformed file -> (the line the error names, words it says)
MALFORMED = {
    "images given as a list": ("r.example:\n  images:\n    - busybox\n", 3, "images must be a mapping, not a list"),
    "a tag list that is a string": ("r.example:\n  images:\n    busybox: latest\n", 3,
                                    "images: busybox must be a list of tags or digests, not str 'latest'"),
    "a tag that is a mapping": ("r.example:\n  images:\n    busybox: [{a: b}]\n", 3,
                                "each tag must be a string, not a mapping"),
    "tls-verify as a string": ("r.example:\n  tls-verify: 'yes'\n", 2, "tls-verify must be true or false, not str"),
    "tls-verify as a number": ("r.example:\n  tls-verify: 1\n", 2, "tls-verify must be true or false, not int '1'"),
    "the file as a list": ("- a\n- b\n", 1, "the file must be a mapping, not a list"),
    "the file as a string": ("hello\n", 1, "the file must be a mapping, not str 'hello'"),
    "a registry as a number": ("r.example: 5\n", 1, "registry r.example must be a mapping, not int '5'"),
    "credentials as a list": ("r.example:\n  credentials: [a]\n", 2, "credentials must be a mapping, not a list"),
    "a password as a list": ("r.example:\n  credentials:\n    username: u\n    password: [a]\n", 4,
                             "credentials: password must be a string, not a list"),
    "cert-dir as a list": ("r.example:\n  cert-dir: [a]\n", 2, "cert-dir must be a string, not a list"),
    "tag regexes as a list": ("r.example:\n  images-by-tag-regex: [a]\n", 2,
                              "images-by-tag-regex must be a mapping, not a list"),
    "a regex as a list": ("r.example:\n  images-by-tag-regex:\n    a: [x]\n", 3, "a must be a string, not a list"),
    "a regex that does not compile": ("r.example:\n  images-by-tag-regex:\n    a: '('\n", 3,
                                      "invalid regular expression '('"),
    "a repository name that is a list": ("r.example:\n  images:\n    [a]: [latest]\n", 3,
                                         "a repository must be a string, not a list"),
    "not YAML": ("a: [\n", 2, "is not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_one_config_error_naming_its_line(case: str) -> None:
    text, line, words = MALFORMED[case]
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "sync.yml")
    message = str(raised.value)
    assert "\n" not in message and words in message, message
    assert (f"sync file sync.yml, line {line}:" in message or f'"sync.yml", line {line}' in message), message
    assert raised.value.exit_code == 1


def test_load_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "sync.yml"
    path.write_text(FULL)
    assert config.load(path) == config.parse(FULL)
    with pytest.raises(ConfigError, match="reading sync file .*missing.yml"):
        config.load(tmp_path / "missing.yml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="reading sync file"):
        config.load(path)
