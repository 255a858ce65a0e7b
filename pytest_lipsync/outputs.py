"""Checking where a run will write before it does any work.

Scoring a gate takes minutes; a results JSON, HTML report, baseline or annotated video that cannot be
written must be refused before it starts, as a usage error naming the path, not as a traceback at the end
that loses every score. Both front-ends check each output they were given with these functions. Nothing is
created: folders are made when the file is written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_lipsync.errors import ConfigError


def check_file_output(path: Path, what: str) -> None:
    """Refuse ``path`` as the file to write ``what`` ("the results JSON") to: it is a folder, a file stands
    where a folder of its path must be, or no file can be made in the folder it would go in."""
    if path.is_dir():
        raise ConfigError(
            f"is a directory, not a file to write {what} to", path=path, hint="Give a file path, e.g. out/results.json"
        )
    _check_folders(path, path.parent)


def check_folder_output(path: Path, what: str) -> None:
    """Refuse ``path`` as the folder to write ``what`` ("the HTML report") into, as :func:`check_file_output`."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"is a file, not a directory to write {what} into", path=path, hint="Give a directory path, e.g. report/"
        )
    _check_folders(path, path)


def _check_folders(path: Path, folder: Path) -> None:
    """``folder`` (where ``path`` goes) exists or can be made: its nearest existing ancestor is a folder where
    a file can be created. Tried with a real file, since permission bits do not tell (root, read-only mounts)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot be written: {existing} is a file, not a directory", path=path)
    try:
        handle, probe = tempfile.mkstemp(prefix=".lipsync-probe-", dir=existing)
    except OSError as exc:
        raise ConfigError(f"cannot be written: {existing} is not writable ({exc.strerror})", path=path) from None
    os.close(handle)
    os.unlink(probe)
