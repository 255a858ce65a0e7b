"""From the paths a user gives to the videos a run scores: listing, keys, ground truth and shard choice.

Every front-end comes through here (the pytest gate through ``session``, ``lipsync score`` and its worker
pool), so that a video has one name and one ground truth whichever of them scores it.

**Keys.** A video is named by its key everywhere: the results JSON (``VideoScore.path``), the gate's items,
baselines, merges, ``[[tool.lipsync.overrides]]`` globs and ``[tool.lipsync.pairs]``. The key is the
video's path relative to the project root (the directory of ``pyproject.toml``: pytest's rootdir, and the
directory ``lipsync`` finds upwards from where it runs), with forward slashes and without ``./`` or
``..``: ``out/a/take_7.mp4``. It does not depend on the working directory or on how the path was written
(``../out``, ``./out``, an absolute path), so one pyproject serves both front-ends. Symlinks are not
resolved: a video under a linked folder keeps the name its user sees. A video outside the project root is
keyed by its absolute path.

**Listing.** A path given is a folder (searched recursively, symlinks followed: ``media.discover``), a file
(taken as given, whatever its extension), or, when no file has that literal name, a glob (``*``, ``?`` and
``[...]`` within a name, ``**`` across folders) that selects video files and every video under a folder it
matches. A missing path is a usage error, unless it names a video file: that video then fails as
``not_found``, as a gate must for a video it was told to check. A folder or glob that yields no video is
:class:`Unmatched`, and each front-end says what that costs: a usage error for ``lipsync score``, a failing
item in the gate unless ``allow_no_videos`` is set.

**Ground truth**, when a reference directory or ``[tool.lipsync.pairs]`` is configured: ``quality.pairing``'s
rules, pairs looked up by key, the reference directory by the path relative to the folder (or a glob's
fixed part) that found the video.

**Shards**: ``sharding`` splits by key and file size, so every CI job of a matrix chooses alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.media.discover import VIDEO_EXTENSIONS, is_video_name, video_files
from pytest_lipsync.quality.pairing import ReferenceTree, match_reference
from pytest_lipsync.scoring.entry import VideoEntry

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig

_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Unmatched:
    """A folder or glob that yielded no video: as given, its key (the gate names an item after it), and why."""

    argument: Path
    key: str
    why: str

    @property
    def message(self) -> str:
        return f"{self.argument}: {self.why}"


@dataclass(frozen=True)
class Listing:
    """The videos found, sorted by key, and the paths that yielded none."""

    entries: tuple[VideoEntry, ...]
    unmatched: tuple[Unmatched, ...] = ()


def video_key(path: Path, root: Path) -> str:
    """The key of the video at ``path`` for the project at ``root`` (module docstring).

    Both are made absolute and normalised as written. Only when that puts the video outside the root are
    symlinks resolved, for a root reached through a link (a working directory's real path against a
    rootdir through a linked folder, or the other way round).
    """
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if absolute.is_relative_to(base):
        return absolute.relative_to(base).as_posix()
    real, real_base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if real.is_relative_to(real_base):
        return real.relative_to(real_base).as_posix()
    return absolute.as_posix()


def list_videos(
    arguments: Sequence[Path], root: Path, *, reference: Path | None = None, pairs: Mapping[str, Path] | None = None
) -> Listing:
    """The videos of ``arguments`` (folders, files, globs) keyed for the project at ``root``, each paired with
    its ground truth when a ``reference`` directory or ``pairs`` are given. A video reached twice keeps the
    first argument's entry. A missing path (not a video file) or a pair naming no file is a :class:`ConfigError`.
    """
    tree = None if reference is None else ReferenceTree.scan(reference)
    paired = tree is not None or bool(pairs)
    entries: dict[str, VideoEntry] = {}
    unmatched: list[Unmatched] = []
    for argument in arguments:
        videos_root, videos, why = _expand(argument)
        if not videos:
            unmatched.append(Unmatched(argument, video_key(argument, root), why))
        for path in videos:
            key = video_key(path, root)
            if key not in entries:
                entries[key] = VideoEntry(
                    key, path, match_reference(path, key, videos_root, tree, pairs) if paired else None
                )
    return Listing(tuple(entries[key] for key in sorted(entries)), tuple(unmatched))


def configured_videos(config: LipsyncConfig, arguments: Sequence[Path] | None = None) -> Listing:
    """:func:`list_videos` with the configuration's root and ground truth; ``arguments`` default to the
    ``videos`` setting's paths, relative ones from the project root."""
    if arguments is None:
        arguments = [config.root / Path(raw).expanduser() for raw in config.options.videos]
    return list_videos(arguments, config.root, reference=config.path(config.settings.reference), pairs=config.pairs)


def select_shard(entries: tuple[VideoEntry, ...], shard: str | None) -> tuple[VideoEntry, ...]:
    """The entries that CI job ``shard`` ("i/n") scores; all of them without a shard."""
    if shard is None:
        return entries
    from pytest_lipsync.scale.sharding import Shard, select

    chosen = select({entry.key: _size(entry.path) for entry in entries}, Shard.parse(shard))
    return tuple(entry for entry in entries if entry.key in chosen)


def _size(path: Path) -> int:
    """A video's size in bytes; a file that vanished counts as empty (it fails when scored)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _expand(argument: Path) -> tuple[Path, list[Path], str]:
    """(the root its ground truth is paired from, the videos, why there are none) for one path given."""
    if os.path.isdir(argument):
        searched = ", ".join(sorted(VIDEO_EXTENSIONS))
        return argument, video_files(argument), f"holds no video file (searched recursively for {searched})"
    if os.path.lexists(argument):
        return argument.parent, [argument], ""
    glob_at = next((n for n, part in enumerate(argument.parts) if _GLOB_CHARACTERS & set(part)), None)
    if glob_at is not None:
        base, pattern = Path(*argument.parts[:glob_at]), argument.parts[glob_at:]
        selected = [path for path in video_files(base) if _selects(pattern, path.relative_to(base).parts)]
        return base, selected, "matches no video file"
    if is_video_name(argument):
        return argument.parent, [argument], ""
    raise ConfigError("no such file or folder", path=argument, hint="Give a folder of videos, a video file or a glob")


def _selects(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether the glob ``pattern`` matches the file ``parts``, or one of the folders holding it."""
    return any(_matches(pattern, parts[:length]) for length in range(1, len(parts) + 1))


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Glob matching by path segment: ``**`` stands for any number of folders, the rest as ``fnmatch``."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[skip:]) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _matches(pattern[1:], parts[1:])
