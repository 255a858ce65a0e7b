"""Finding the video files under a folder, as the gate's videos and the ground truth are laid out.

Symlinks are followed, because generators and CI caches often link their output folders into a project,
and a gate must not pass because it looked past them. Each real folder is walked once, so a link back to
a folder above ends the walk instead of recursing forever. A symlink that leads nowhere (dangling, or a
loop) is listed like a file: scoring then reports it as ``not_found`` instead of the gate skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pytest_lipsync.errors import ConfigError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts"})


def is_video_name(path: Path) -> bool:
    """Whether the file name has a video container's extension (any case)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def walk_files(top: Path) -> Iterator[Path]:
    """The files under ``top`` (depth first, in name order), reached through symlinked folders too, plus the
    symlinks that lead nowhere. Paths are ``top`` joined with the names seen, never resolved, so a video
    under a linked folder keeps the name its user sees. Special files (pipes, sockets, devices) are not listed.

    A folder that cannot be read is a :class:`ConfigError`: skipping it would drop its videos from a gate.
    """
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Path]:
        try:
            status = folder.stat()
            if (status.st_dev, status.st_ino) in seen:
                return
            seen.add((status.st_dev, status.st_ino))
            names = sorted(entry.name for entry in os.scandir(folder))
        except OSError as exc:
            raise ConfigError(
                f"cannot be listed: {exc.strerror}", path=folder, hint="Make the folder readable"
            ) from None
        for name in names:
            path = folder / name
            if os.path.isdir(path):  # these follow links; a link loop is neither folder nor file
                yield from visit(path)
            elif os.path.isfile(path) or not os.path.exists(path):
                yield path

    if top.is_dir():
        yield from visit(top)


def video_files(top: Path) -> list[Path]:
    """The video files under ``top`` (see :func:`walk_files`), in name order."""
    return [path for path in walk_files(top) if is_video_name(path)]
