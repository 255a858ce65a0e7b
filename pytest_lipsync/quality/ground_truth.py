"""The quality half of a score: each video's ground truth found, compared, and added to its :class:`VideoScore`.

Quality is requested by giving a reference file, or by setting ``reference`` (a directory, where
:mod:`.pairing` finds each video's ground truth by relative path, then by stem). A video then gains:

- ``metrics["psnr"]`` and ``metrics["ssim"]``: means over the compared frames (PSNR capped at 100 dB per
  frame, identical frames counted: see :mod:`.video`);
- ``quality``: ``reference`` (the file compared with, or null), ``match`` (the pairing rule: ``explicit``,
  ``path``, ``stem``, ``stem-anywhere``, or ``none``), the variant (``ssim_window``, ``color``, ``region``),
  ``error`` (null, or kind, message and facts), and when compared: ``psnr`` and ``ssim`` (``mean``,
  ``worst`` frame and value, ``per_frame``), ``frames`` compared, ``generated_frames``,
  ``reference_frames``, ``length_mismatch`` (generated minus reference), ``identical_frames``,
  ``psnr_cap_db`` and ``resized_reference``.

**A quality failure keeps the LSE numbers.** A pair that cannot be compared (``reference_mismatch``) or a
video without ground truth (``no_reference``) puts its error in ``quality["error"]`` and, unless the video
already failed for another reason, in ``VideoScore.error``: the video fails, as a gate on a broken ground
truth must, while its LSE-D/LSE-C stay in ``metrics``. Quality is measured even when LSE failed (a clip too
short or silent for SyncNet still has frames to compare); the first failure is the video's error.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from pytest_lipsync.errors import NoReferenceError, VideoError
from pytest_lipsync.quality.accumulate import QualityResult
from pytest_lipsync.quality.pairing import ReferenceMatch, ReferenceTree, match_reference
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.quality.video import compare_videos
from pytest_lipsync.results import ScoreError, VideoScore
from pytest_lipsync.settings import Settings


class GroundTruth:
    """Finds and compares ground truth for one scoring run; the reference directory is scanned once."""

    def __init__(self, settings: Settings, device: str = "cpu") -> None:
        self.settings: QualitySettings = settings.quality
        self.device = device
        self.tree = None if settings.reference is None else ReferenceTree.scan(Path(settings.reference))

    def add_to(
        self, score: VideoScore, video: Path, reference: Path | None = None, videos_root: Path | None = None
    ) -> VideoScore:
        """``score`` with PSNR/SSIM against ``reference``, or against the match in the reference directory.

        ``videos_root`` is the directory the video was found under (pairing by relative path is relative to
        it; default: the video's own directory). Unchanged when no quality was requested.
        """
        if reference is None and self.tree is None:
            return score
        started = time.perf_counter()
        quality, metrics, error = self._measure(video, reference, videos_root or video.parent)
        return dataclasses.replace(
            score,
            metrics={**score.metrics, **metrics},
            quality=quality,
            error=score.error or error,
            timings={**score.timings, "quality": time.perf_counter() - started},
        )

    def _measure(
        self, video: Path, reference: Path | None, videos_root: Path
    ) -> tuple[dict[str, Any], dict[str, float], ScoreError | None]:
        match: ReferenceMatch | None = None
        try:
            match = self._match(video, reference, videos_root)
            if match.reference is None:
                raise self._missing(video, videos_root)
            result = compare_videos(video, match.reference, self.settings, self.device)
        except VideoError as exc:
            error = ScoreError(exc.kind, exc.message, exc.facts)
            return self._section(match, None, error), {}, error
        return self._section(match, result, None), {"psnr": result.psnr.mean, "ssim": result.ssim.mean}, None

    def _match(self, video: Path, reference: Path | None, videos_root: Path) -> ReferenceMatch:
        if reference is not None:
            return ReferenceMatch(video, reference, "explicit")
        return match_reference(video, videos_root, self.tree)

    def _missing(self, video: Path, videos_root: Path) -> NoReferenceError:
        assert self.tree is not None  # a given reference always matches
        relative = video.relative_to(videos_root).as_posix()
        return NoReferenceError(
            f'has no ground truth in {self.tree.root}: no "{relative}" there, and no video named "{video.stem}.*"',
            path=video,
            hint=f"Add its ground truth as {self.tree.root / relative} (any video container), or score it "
            "without a reference",
            facts={"reference_dir": str(self.tree.root), "relative_path": relative},
        )

    def _section(
        self, match: ReferenceMatch | None, result: QualityResult | None, error: ScoreError | None
    ) -> dict[str, Any]:
        """The ``quality`` entry of a result (module docstring); the variant is named even when nothing was compared."""
        reference = None if match is None or match.reference is None else str(match.reference)
        return {
            "reference": reference,
            "match": None if match is None else match.rule,
            "ssim_window": self.settings.ssim_window,
            "color": self.settings.color,
            "region": self.settings.region,
            **({} if result is None else result.to_json()),
            "error": None if error is None else error.to_dict(),
        }
