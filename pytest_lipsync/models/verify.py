"""SHA-256 of weights files, computed once per file version.

Hashing the 90 MB S3FD file takes a noticeable fraction of a second, and every pytest worker and every
``lipsync`` call resolves the weights. So a digest is memoised in the process, keyed by the file's identity
and modification time, and for files in directories this package manages (the cache, ``LIPSYNC_HOME``,
a download target) also written to a small sidecar next to the file, so that later processes skip the
hash. A sidecar only vouches for the exact size and ``mtime_ns`` it recorded: any rewrite invalidates it.
Files a user points at explicitly get no sidecar, so their directories are never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from pytest_lipsync.results import publish

_CHUNK = 1 << 20
_SIDECAR_SUFFIX = ".sha256.json"

_MEMO: dict[tuple[int, int, int, int], str] = {}


def file_sha256(path: Path, *, sidecar: bool = False) -> str:
    """The file's SHA-256 (hex), from the memo, a still-valid sidecar, or by reading the file."""
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    recorded = _read_sidecar(path, stat) if sidecar else None
    digest = recorded or _MEMO.get(key) or _hash_file(path)
    if sidecar and recorded is None:
        _write_sidecar(path, stat, digest)
    _MEMO[key] = digest
    return digest


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR_SUFFIX)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_sidecar(path: Path, stat: os.stat_result) -> str | None:
    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    digest = record.get("sha256")
    return digest if isinstance(digest, str) else None


def _write_sidecar(path: Path, stat: os.stat_result, digest: str) -> None:
    """Write atomically; a read-only directory just means the next process hashes again."""
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    with contextlib.suppress(OSError):
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as sink:
                json.dump(record, sink)
            publish(Path(temporary), sidecar_path(path))
        except OSError:
            os.unlink(temporary)
            raise
