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
  ``psnr_cap_db`` and ``resized_reference``. With ``region = "face"`` also ``tracks`` (the first and last
  frame of each face track whose crops were compared), ``crops`` (how many), and the series run over the
  crops track after track, the worst value naming its ``track`` and video ``frame`` (see :mod:`.face`).

**The face region** needs the generated video's face tracks: the :class:`~pytest_lipsync.scoring.scorer.Scorer`
gives a ``face_regions`` function that finds them. A video without a usable track gets a ``no_face_track``
quality error (its LSE fails the same way). With ``protocol = "cropped"`` there are no tracks (the frames
already are face crops), so ``region = "face"`` is a :class:`ConfigError` when the ``GroundTruth`` is made.

**A quality failure keeps the LSE numbers.** A pair that cannot be compared (``reference_mismatch``) or a
video without ground truth (``no_reference``) puts its error in ``quality["error"]`` and, unless the video
already failed for another reason, in ``VideoScore.error``: the video fails, as a gate on a broken ground
truth must, while its LSE-D/LSE-C stay in ``metrics``. Quality is measured even when LSE failed (a clip too
short or silent for SyncNet still has frames to compare); the first failure is the video's error.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_lipsync.errors import ConfigError, VideoError
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.metrics import BY_NAME
from pytest_lipsync.quality.accumulate import Measure, QualityResult
from pytest_lipsync.quality.face import FaceRegions
from pytest_lipsync.quality.generated import measure_generated
from pytest_lipsync.quality.pairing import ReferenceMatch, ReferenceTree, match_reference
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.quality.video import compare_videos
from pytest_lipsync.results import ScoreError, VideoScore
from pytest_lipsync.settings import Settings


class GroundTruth:
    """Finds and compares ground truth for one scoring run; the reference directory is scanned once.

    ``face_regions``: the generated video's face tracks for a path, which ``region = "face"`` requires.
    """

    def __init__(
        self,
        settings: Settings,
        device: str = "cpu",
        face_regions: Callable[[Path, VideoLimits], FaceRegions] | None = None,
        measures: Mapping[str, Measure] | None = None,
    ) -> None:
        _check_region(settings, face_regions)
        self.settings: QualitySettings = settings.quality
        self.limits = settings.limits
        self.device = device
        self.face_regions = face_regions
        self.tree = None if settings.reference is None else ReferenceTree.scan(Path(settings.reference))
        # The opt-in metrics (LPIPS, CPBD); set by the Scorer once their networks are loaded.
        self.measures: Mapping[str, Measure] = measures or {}

    @property
    def _without_reference(self) -> dict[str, Measure]:
        """The measures that need no ground truth (CPBD): what a video without any still gets."""
        return {name: measure for name, measure in self.measures.items() if not BY_NAME[name].needs_reference}

    def add_to(
        self,
        score: VideoScore,
        video: Path,
        reference: Path | ReferenceMatch | None = None,
        *,
        limits: VideoLimits | None = None,
    ) -> VideoScore:
        """``score`` with PSNR/SSIM against ``reference``: a file, or the match found for the video when its
        videos were listed (``pytest_lipsync.session.videos``, which knows its key and the folder it was found in).
        Without either, the video's match in the reference directory as if it was named on its own.

        ``limits``: the caller's, carrying the video's clock (default: the settings', the clock starting now).
        Unchanged when no quality was requested.
        """
        if reference is None and self.tree is None and not self._without_reference:
            return score
        started = time.perf_counter()
        if reference is None and self.tree is None:
            quality, metrics, error = self._measure_alone(video, limits or self.limits)
        else:
            quality, metrics, error = self._measure(video, self._match(video, reference), limits or self.limits)
        return dataclasses.replace(
            score,
            metrics={**score.metrics, **metrics},
            quality=quality,
            error=score.error or error,
            timings={**score.timings, "quality": time.perf_counter() - started},
        )

    def _match(self, video: Path, reference: Path | ReferenceMatch | None) -> ReferenceMatch:
        if isinstance(reference, ReferenceMatch):
            return reference
        if reference is not None:
            return ReferenceMatch(video, reference, "explicit")
        assert self.tree is not None  # add_to returns early without either
        return match_reference(video, video.as_posix(), video.parent, self.tree)

    def _measure(
        self, video: Path, match: ReferenceMatch, limits: VideoLimits
    ) -> tuple[dict[str, Any], dict[str, float], ScoreError | None]:
        if match.reference is None:
            assert match.error is not None  # a match without a reference says why
            return self._section(match, None, match.error), {}, match.error
        try:
            faces = self._faces(video, limits)
            result = compare_videos(
                video, match.reference, self.settings, self.device, faces=faces, limits=limits, measures=self.measures
            )
        except VideoError as exc:
            error = ScoreError.from_error(exc)
            return self._section(match, None, error), {}, error
        means = {"psnr": result.psnr.mean, "ssim": result.ssim.mean}
        means.update({name: series.mean for name, series in result.measured.items()})
        return self._section(match, result, None), means, None

    def _measure_alone(
        self, video: Path, limits: VideoLimits
    ) -> tuple[dict[str, Any], dict[str, float], ScoreError | None]:
        """The metrics that need no ground truth, for a video that has none: ``quality`` says ``reference`` and
        ``match`` null, the region, and their series."""
        section: dict[str, Any] = {"reference": None, "match": None, "region": self.settings.region}
        try:
            result = measure_generated(video, self._without_reference, faces=self._faces(video, limits), limits=limits)
        except VideoError as exc:
            error = ScoreError.from_error(exc)
            return {**section, "error": error.to_dict()}, {}, error
        means = {name: series.mean for name, series in result.measured.items()}
        return {**section, **result.to_json(), "error": None}, means, None

    def _faces(self, video: Path, limits: VideoLimits) -> FaceRegions | None:
        """The video's face tracks when the region is the face (they cost a detection pass), else None."""
        if self.settings.region != "face":
            return None
        assert self.face_regions is not None  # _check_region
        return self.face_regions(video, limits)

    def _section(self, match: ReferenceMatch, result: QualityResult | None, error: ScoreError | None) -> dict[str, Any]:
        """The ``quality`` entry of a result (module docstring); the variant is named even when nothing was compared."""
        return {
            "reference": None if match.reference is None else str(match.reference),
            "match": match.rule,
            "ssim_window": self.settings.ssim_window,
            "color": self.settings.color,
            "region": self.settings.region,
            **({} if result is None else result.to_json()),
            "error": None if error is None else error.to_dict(),
        }


def _check_region(settings: Settings, face_regions: Callable[[Path, VideoLimits], FaceRegions] | None) -> None:
    """Refuse ``region = "face"`` before any video where no face tracks can be had (module docstring)."""
    if settings.region != "face":
        return
    if settings.protocol == "cropped":
        raise ConfigError(
            "region = 'face' measures inside the face tracks of the pipeline protocol, and protocol = 'cropped' "
            "has none: its frames already are the face crops",
            hint="Use region = 'frame', which compares those face crops whole, or protocol = 'pipeline'",
        )
    if face_regions is None:
        raise ConfigError(
            "region = 'face' needs the generated videos' face tracks, and no way to find them was given",
            hint="Score through a Scorer (it finds them with the pipeline's detector), or use region = 'frame'",
        )
