"""Turning the paths a user gives into the list of videos to score."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts"})


def discover_videos(paths: Iterable[str | Path]) -> list[Path]:
    """Directories are searched recursively for video extensions; anything else is taken as given.

    A path that does not exist is kept, so that it is reported as that video's failure rather than
    silently dropped from a gate.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()))
        else:
            found.append(path)
    return list(dict.fromkeys(found))
