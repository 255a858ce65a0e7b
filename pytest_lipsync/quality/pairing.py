"""Finding each generated video's ground truth.

Rules, first match wins:

1. ``explicit``: ``[tool.lipsync.pairs]`` maps the video's path relative to its root (``"a/b.mp4"``) to
   a reference file. Naming a file that does not exist is a configuration error: the user said where the
   ground truth is, and silently scoring without it would hide the typo.
2. ``path``: the same relative path under the reference directory.
3. ``stem``: a video file with the same stem in the same relative directory, since generators often
   change the container (``a/b.mp4`` for ``a/b.mkv``).
4. ``stem-anywhere``: a video file with the same stem anywhere in the reference tree, for trees laid out
   differently.

Two candidates at step 3 or 4 are an error listing them (:class:`ReferenceMismatchError`, so that video
fails and the others are still scored): picking one would compare against the wrong video without a
word. No candidate at all is a result, ``rule == "none"``, reported as "no reference".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pytest_lipsync.errors import ConfigError, ReferenceMismatchError
from pytest_lipsync.media.discover import VIDEO_EXTENSIONS

MatchRule = Literal["explicit", "path", "stem", "stem-anywhere", "none"]


@dataclass(frozen=True)
class ReferenceMatch:
    """The reference found for one generated video, and by which rule (``None`` and ``"none"``: no reference)."""

    video: Path
    reference: Path | None
    rule: MatchRule


@dataclass(frozen=True)
class ReferenceTree:
    """The video files under a reference directory, indexed by stem; scanned once per run."""

    root: Path
    by_stem: Mapping[str, tuple[PurePosixPath, ...]]

    @classmethod
    def scan(cls, root: Path) -> ReferenceTree:
        if not root.is_dir():
            raise ConfigError(
                "the reference directory does not exist or is not a directory",
                path=root,
                hint="Point --lipsync-reference / reference at the directory that holds the ground-truth videos",
            )
        by_stem: dict[str, list[PurePosixPath]] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
                by_stem.setdefault(path.stem, []).append(PurePosixPath(path.relative_to(root).as_posix()))
        return cls(root, {stem: tuple(paths) for stem, paths in by_stem.items()})


def match_reference(
    video: Path,
    videos_root: Path,
    tree: ReferenceTree | None,
    pairs: Mapping[str, Path] | None = None,
) -> ReferenceMatch:
    """The reference of ``video`` (a file under ``videos_root``) by the rules of the module docstring.

    ``pairs`` keys are paths relative to ``videos_root`` in POSIX form; values are used as given (the
    settings resolve relative ones against the configuration file's directory).
    """
    relative = PurePosixPath(video.relative_to(videos_root).as_posix())
    explicit = {PurePosixPath(key): path for key, path in (pairs or {}).items()}.get(relative)
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                f'[tool.lipsync.pairs] maps "{relative}" to {explicit}, which is not a file',
                hint="Fix the path in [tool.lipsync.pairs] or remove the entry",
            )
        return ReferenceMatch(video, explicit, "explicit")
    if tree is None:
        return ReferenceMatch(video, None, "none")
    if (tree.root / relative).is_file():
        return ReferenceMatch(video, tree.root / relative, "path")
    candidates = tree.by_stem.get(relative.stem, ())
    beside = tuple(candidate for candidate in candidates if candidate.parent == relative.parent)
    if beside:
        return _only(video, relative, beside, tree, "stem")
    if candidates:
        return _only(video, relative, candidates, tree, "stem-anywhere")
    return ReferenceMatch(video, None, "none")


def _only(
    video: Path, relative: PurePosixPath, candidates: tuple[PurePosixPath, ...], tree: ReferenceTree, rule: MatchRule
) -> ReferenceMatch:
    if len(candidates) == 1:
        return ReferenceMatch(video, tree.root / candidates[0], rule)
    listed = ", ".join(str(tree.root / candidate) for candidate in candidates)
    raise ReferenceMismatchError(
        f'{len(candidates)} references match by the file stem "{relative.stem}": {listed}',
        path=video,
        hint=f'Name this video\'s reference in [tool.lipsync.pairs], e.g. "{relative}" = "{tree.root / candidates[0]}"',
        facts={"candidates": [str(tree.root / candidate) for candidate in candidates]},
    )


def videos_root(video: Path, arguments: Iterable[str | Path]) -> Path:
    """The directory among ``arguments`` (what the user asked to score) that holds ``video``, else its parent.

    Pairing by relative path is relative to that directory: ``lipsync score out/`` pairs ``out/a/b.mp4``
    with ``gt/a/b.mp4``; a video named on its own pairs by its file name.
    """
    directories = (Path(argument) for argument in arguments if Path(argument).is_dir())
    return next((directory for directory in directories if video.is_relative_to(directory)), video.parent)
