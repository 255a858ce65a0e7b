"""Finding each generated video's ground truth.

Rules, first match wins:

1. ``explicit``: ``[tool.lipsync.pairs]`` maps the video's key (its path relative to the project root,
   ``"out/a/b.mp4"``, see ``pytest_lipsync.session.videos``) to a reference file. Naming a file that does not exist
   is a configuration error: the user said where the ground truth is, and silently scoring without it would
   hide the typo.
2. ``path``: the same relative path under the reference directory.
3. ``stem``: a video file with the same stem in the same relative directory, since generators often
   change the container (``a/b.mp4`` for ``a/b.mkv``).
4. ``stem-anywhere``: a video file with the same stem anywhere in the reference tree, for trees laid out
   differently.

Steps 2 to 4 look in the reference directory by the path relative to the videos' root (the folder the video
was found in). A video without a reference is a result, ``rule == "none"``, whose ``error`` says why, so that
the video fails and the others are still scored: ``reference_mismatch`` for two candidates at step 3 or 4,
listing them (picking one would compare against the wrong video without a word), ``no_reference`` for none,
saying where the ground truth was looked for and the pair that would name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pytest_lipsync.errors import ConfigError, NoReferenceError, ReferenceMismatchError
from pytest_lipsync.media.discover import video_files
from pytest_lipsync.results import ScoreError

MatchRule = Literal["explicit", "path", "stem", "stem-anywhere", "none"]


@dataclass(frozen=True)
class ReferenceMatch:
    """The reference found for one generated video, and by which rule (``None`` and ``"none"``: no reference,
    and ``error`` says why the video has none)."""

    video: Path
    reference: Path | None
    rule: MatchRule
    error: ScoreError | None = None


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
        for path in video_files(root):
            by_stem.setdefault(path.stem, []).append(PurePosixPath(path.relative_to(root).as_posix()))
        return cls(root, {stem: tuple(paths) for stem, paths in by_stem.items()})


def match_reference(
    video: Path,
    key: str,
    videos_root: Path,
    tree: ReferenceTree | None,
    pairs: Mapping[str, Path] | None = None,
) -> ReferenceMatch:
    """The reference of ``video`` (named ``key``, found under ``videos_root``) by the rules of the module docstring.

    ``pairs`` keys are video keys in POSIX form (a ``./`` is ignored); values are used as given (the settings
    resolve relative ones against the configuration file's directory).
    """
    explicit = {PurePosixPath(name): path for name, path in (pairs or {}).items()}.get(PurePosixPath(key))
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                f'[tool.lipsync.pairs] maps "{key}" to {explicit}, which is not a file',
                hint="Fix the path in [tool.lipsync.pairs] or remove the entry",
            )
        return ReferenceMatch(video, explicit, "explicit")
    if tree is None:
        return ReferenceMatch(video, None, "none", _pairs_miss(video, key))
    relative = PurePosixPath(video.relative_to(videos_root).as_posix())
    if (tree.root / relative).is_file():
        return ReferenceMatch(video, tree.root / relative, "path")
    candidates = tree.by_stem.get(relative.stem, ())
    beside = tuple(candidate for candidate in candidates if candidate.parent == relative.parent)
    if beside:
        return _only(video, key, relative, beside, tree, "stem")
    if candidates:
        return _only(video, key, relative, candidates, tree, "stem-anywhere")
    return ReferenceMatch(video, None, "none", _tree_miss(video, key, relative, tree))


def _pairs_miss(video: Path, key: str) -> ScoreError:
    """No reference directory, and no pair for this video."""
    return ScoreError.from_error(
        NoReferenceError(
            f'has no ground truth: [tool.lipsync.pairs] has no entry "{key}"',
            path=video,
            hint=f'Add one: "{key}" = "<ground-truth file>"',
            facts={"key": key},
        )
    )


def _tree_miss(video: Path, key: str, relative: PurePosixPath, tree: ReferenceTree) -> ScoreError:
    """Nothing in the reference directory by path or stem, and no pair."""
    return ScoreError.from_error(
        NoReferenceError(
            f'has no ground truth in {tree.root}: no "{relative}" there, and no video named "{relative.stem}.*"',
            path=video,
            hint=f"Add its ground truth as {tree.root / relative} (any video container), or name it in "
            f'[tool.lipsync.pairs]: "{key}" = "<ground-truth file>"',
            facts={"reference_dir": str(tree.root), "relative_path": str(relative), "key": key},
        )
    )


def _only(
    video: Path,
    key: str,
    relative: PurePosixPath,
    candidates: tuple[PurePosixPath, ...],
    tree: ReferenceTree,
    rule: MatchRule,
) -> ReferenceMatch:
    if len(candidates) == 1:
        return ReferenceMatch(video, tree.root / candidates[0], rule)
    listed = ", ".join(str(tree.root / candidate) for candidate in candidates)
    ambiguous = ReferenceMismatchError(
        f'{len(candidates)} references match by the file stem "{relative.stem}": {listed}',
        path=video,
        hint=f'Name this video\'s reference in [tool.lipsync.pairs], e.g. "{key}" = "{tree.root / candidates[0]}"',
        facts={"candidates": [str(tree.root / candidate) for candidate in candidates]},
    )
    return ReferenceMatch(video, None, "none", ScoreError.from_error(ambiguous))
