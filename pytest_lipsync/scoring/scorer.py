"""The one entry point from a video file to a :class:`VideoScore`, composing the stages.

``Scorer`` loads the models once and scores many videos: the CLI, the pytest session fixture and the
Python API all hold one. A video that cannot be scored becomes a result with an ``error``; it never
raises out of :meth:`Scorer.score`, so one bad file never stops the others. Problems with the set-up
itself (weights, settings) do raise, before any video is touched.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.errors import ConfigError, NonFiniteError, VideoError
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.progress import ProgressHook, Stage, VideoProgress
from pytest_lipsync.quality.ground_truth import GroundTruth
from pytest_lipsync.results import RunRecord, ScoreError, TrackScore, VideoScore, WeightsRecord, mean_over_tracks
from pytest_lipsync.scoring.cropped import CroppedProtocol
from pytest_lipsync.settings import Settings
from pytest_lipsync.version import __version__

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.faces.detector import Detector
    from pytest_lipsync.media.decode import VideoSource
    from pytest_lipsync.models.resolve import ResolvedWeights
    from pytest_lipsync.quality.accumulate import Measure
    from pytest_lipsync.quality.face import FaceRegions
    from pytest_lipsync.quality.pairing import ReferenceMatch
    from pytest_lipsync.scoring.pipeline import FacePipeline, PipelineResult
    from pytest_lipsync.sync.lse import SyncScorer, Timings


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"setting 'device' is {name!r} but this PyTorch build sees no CUDA device",
            hint="Use device = 'auto' or 'cpu', or install a CUDA build of torch",
        )
    return torch.device(name)


class Scorer:
    """Models loaded once on one device, scoring any number of videos with one :class:`Settings`."""

    def __init__(self, settings: Settings | None = None) -> None:
        from pytest_lipsync.models.resolve import resolve_run_weights
        from pytest_lipsync.sync.lse import SyncScorer
        from pytest_lipsync.sync.model import load_syncnet

        self.settings = settings or Settings()
        self.device = resolve_device(self.settings.device)
        pipeline = self.settings.protocol == "pipeline"
        # Before the weights: a region that cannot work is a ConfigError before anything loads.
        self._ground_truth = GroundTruth(self.settings, str(self.device), self._face_regions if pipeline else None)
        weights = resolve_run_weights(self.settings)
        self.weights: tuple[WeightsRecord, ...] = weights.records()
        self._ground_truth.measures = self._frame_measures(weights.lpips)
        self._sync: SyncScorer = SyncScorer(
            load_syncnet(weights.syncnet, self.device), self.device, self.settings.batch_size, self.settings.precision
        )
        self._faces: FacePipeline | None = None
        if pipeline:
            self._faces = self._face_pipeline(weights.s3fd)

    def _frame_measures(self, lpips: tuple[ResolvedWeights, ResolvedWeights] | None) -> dict[str, Measure]:
        """The opt-in per-frame metrics this run computes (``metrics``), their networks loaded on the device."""
        measures: dict[str, Measure] = {}
        if lpips is not None:
            from pytest_lipsync.quality.measures import lpips_measure

            measures["lpips"] = lpips_measure(self.settings.lpips_net, *lpips, device=str(self.device))
        if self.settings.computes("cpbd"):
            from pytest_lipsync.quality.measures import cpbd_measure

            measures["cpbd"] = cpbd_measure
        return measures

    def _face_pipeline(self, weights: ResolvedWeights | None) -> FacePipeline:
        """The pipeline with the user's detector plug-in, or S3FD (``weights`` resolved for it) on the device."""
        from pytest_lipsync.scoring.pipeline import FacePipeline

        if weights is None:
            from pytest_lipsync.faces.detector import load_detector

            return FacePipeline(load_detector(str(self.settings.detector)), self._sync, self.settings)
        from pytest_lipsync.faces.s3fd import S3FDDetector, load_s3fd

        net = load_s3fd(weights, self.device)
        detector = S3FDDetector(
            net, self.device, facedet_scale=self.settings.facedet_scale, precision=self.settings.precision
        )
        return FacePipeline(detector, self._sync, self.settings)

    def _face_regions(self, path: Path, limits: VideoLimits) -> FaceRegions:
        """The tracks ``region = "face"`` crops at: pass 1 and tracking again, on the clean 25 fps frames.

        Not LSE's tracks: in reference fidelity LSE reads a replay whose frames are shifted (the first one
        repeated for the MP3's priming), and quality compares the clean frames. One code path for both
        fidelities, at the price of a second detection pass, only when the face region is asked for.
        """
        from pytest_lipsync.quality.face import FaceRegions
        from pytest_lipsync.scoring.pipeline import FacePipeline
        from pytest_lipsync.sync.lse import Timings

        assert self._faces is not None  # given to GroundTruth for the pipeline protocol only
        clean = FacePipeline(self._faces.detector, self._sync, self.settings.replace(fidelity="clean"))
        _, tracks = clean.find_tracks(self._open(path, limits), Timings())
        return FaceRegions(tracks, self.settings.crop_scale)

    @property
    def sync(self) -> SyncScorer:
        """The SyncNet stage (its network and device): what a benchmark times its forward passes on."""
        return self._sync

    def wrap_detector(self, wrap: Callable[[Detector], Detector]) -> Detector | None:
        """Put ``wrap(detector)`` in place of the pipeline's face detector and return it: the hook through which
        a benchmark counts and times detection without reaching into the pipeline. ``None`` for the cropped
        protocol, which detects nothing."""
        if self._faces is None:
            return None
        self._faces.detector = wrap(self._faces.detector)
        return self._faces.detector

    @property
    def run(self) -> RunRecord:
        return RunRecord(
            tool_version=__version__,
            settings=self.settings.result_settings(),
            weights=self.weights,
            device=str(self.device),
        )

    def score(
        self,
        path: str | Path,
        reference: str | Path | ReferenceMatch | None = None,
        progress: ProgressHook | None = None,
    ) -> VideoScore:
        """Score one video; failures come back as ``VideoScore.error``, never as exceptions.

        PSNR/SSIM are added against ``reference``: a file, or the match found when the video was listed (see
        ``pytest_lipsync.session.videos``); without one, against the video's match in the ``reference`` setting's
        directory (see ``quality.ground_truth``). ``progress`` hears the stages' counts as they go.
        """
        limits = dataclasses.replace(self.settings.limits, started=time.monotonic())  # one clock per video
        lse = self._score_lse(Path(path), limits, progress)
        given = Path(reference) if isinstance(reference, (str, Path)) else reference
        return self._ground_truth.add_to(lse, Path(path), given, limits=limits)

    def _open(self, path: Path, limits: VideoLimits | None = None) -> VideoSource:
        """The video with this run's limits: frame size, damaged frames and time (its deadline starts now,
        unless ``limits`` carry the clock of a call already scoring it)."""
        from pytest_lipsync.media.decode import open_video

        return open_video(path, limits or self.settings.limits)

    def _score_lse(self, path: Path, limits: VideoLimits, progress: ProgressHook | None = None) -> VideoScore:
        from pytest_lipsync.sync.lse import Timings

        timings = Timings()
        try:
            source = self._open(path, limits)
            timings.deadline = source.deadline
            timings.progress = _watched(source, progress)
            if self._faces is None:
                tracks, frames, audio_frames = CroppedProtocol(self._sync, self.settings).score(source, timings)
            else:
                tracks, frames, audio_frames = self._score_pipeline(self._faces, source, timings)
            _check_finite(path, tracks)
        except VideoError as exc:
            return VideoScore(
                path=str(path),
                timings=timings.seconds,
                error=ScoreError.from_error(exc),
            )
        return VideoScore(
            path=str(path),
            metrics=mean_over_tracks(tracks),
            tracks=tracks,
            frames=frames,
            audio_frames=audio_frames,
            duration=frames / 25,
            timings=dict(timings.seconds),
            damaged_frames=source.damaged_frames,
        )

    @staticmethod
    def _score_pipeline(
        faces: FacePipeline, source: VideoSource, timings: Timings
    ) -> tuple[tuple[TrackScore, ...], int, int]:
        result = faces.score(source, timings)
        return result.tracks, result.frames, result.audio_frames

    def score_tracks(self, path: str | Path, progress: ProgressHook | None = None) -> PipelineResult:
        """The pipeline protocol's scored tracks with their per-frame geometry, for drawing them
        (``lipsync visualize``); unlike :meth:`score`, a video that cannot be scored raises its VideoError."""
        from pytest_lipsync.sync.lse import Timings

        if self._faces is None:
            raise no_tracks_to_draw()
        source = self._open(Path(path))
        timings = Timings(deadline=source.deadline, progress=_watched(source, progress))
        return self._faces.score(source, timings)


def _watched(source: VideoSource, hook: ProgressHook | None) -> VideoProgress | None:
    """The video's counters for ``hook``, with the frame count its header implies (if it says)."""
    if hook is None:
        return None
    expected = source.info.expected_frames
    totals: dict[Stage, int] = {} if expected is None else {"frames": expected, "faces": expected}
    return VideoProgress(str(source.path), hook, totals)


def _check_finite(path: Path, tracks: tuple[TrackScore, ...]) -> None:
    """Fail the video when a track's LSE is NaN or infinite (float32 overflow in the models), never score it."""
    for track in tracks:
        if not (math.isfinite(track.lse_d) and math.isfinite(track.lse_c)):
            raise NonFiniteError(
                f"SyncNet's distances are not finite (lse_d = {track.lse_d}, lse_c = {track.lse_c} in the track at "
                f"frames {track.start_frame}-{track.end_frame}): a score that is not a number can neither pass nor "
                "fail a gate",
                path=path,
                hint="The forward passes overflowed: score with precision = 'fp32' and the released weights "
                "(custom weights may hold values too large for float32)",
                facts={
                    "first_frame": track.start_frame,
                    "last_frame": track.end_frame,
                    "lse_d": str(track.lse_d),
                    "lse_c": str(track.lse_c),
                },
            )


def no_tracks_to_draw() -> ConfigError:
    return ConfigError(
        "protocol = 'cropped' has no face tracks to draw: its frames already are the face crops",
        hint="Use protocol = 'pipeline' (--protocol pipeline) for videos with faces in them",
    )


def score(path: str | Path, settings: Settings | None = None, **changes: object) -> VideoScore:
    """Score one video with ``settings`` (keyword arguments override single settings).

    Loads the models for this one call; to score many videos, keep a :class:`Scorer`.
    """
    resolved = (settings or Settings()).replace(**changes)
    return Scorer(resolved).score(path)
