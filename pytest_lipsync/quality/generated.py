"""Per-frame metrics that need no ground truth (CPBD), measured on a generated video alone.

A video with ground truth gets them in the comparison's own pass (:func:`~pytest_lipsync.quality.video.compare_videos`
hands them the generated side of each pair); this is the pass for a video without any. Same decoding to 25 fps
RGB, same small batches decoded on a background thread, and with ``region = "face"`` the same crops of the
generated video's face tracks (track after track, each in frame order), so a value does not depend on whether
ground truth was configured.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_lipsync.errors import NoFaceTrackError
from pytest_lipsync.faces.crop import TrackCropper
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.metrics import HIGHER_IS_BETTER
from pytest_lipsync.quality.accumulate import Measure, MetricSeries, TrackSpan, series_json, tracks_json
from pytest_lipsync.quality.face import FaceRegions
from pytest_lipsync.quality.video import BATCH_SIZE


@dataclass(frozen=True)
class GeneratedResult:
    """The series of each measure over a video's frames (or its face crops, ``tracks``) and the frames read."""

    frames: int
    measured: Mapping[str, MetricSeries]
    tracks: tuple[TrackSpan, ...] = ()

    def to_json(self) -> dict[str, Any]:
        series = {name: series_json(values, self.tracks) for name, values in self.measured.items()}
        return {"frames": self.frames, **series, **tracks_json(self.tracks)}


class _Values:
    """Each measure's per-frame values, as plain floats."""

    def __init__(self, measures: Mapping[str, Measure]) -> None:
        self.measures = measures
        self.values = {name: array("d") for name in measures}
        self.count = 0

    def add(self, frames: np.ndarray) -> None:
        for name, measure in self.measures.items():
            self.values[name].extend(measure(None, frames).tolist())
        self.count += len(frames)


def measure_generated(
    generated: Path,
    measures: Mapping[str, Measure],
    *,
    faces: FaceRegions | None = None,
    limits: VideoLimits = VideoLimits(),
    batch_size: int = BATCH_SIZE,
) -> GeneratedResult:
    """``measures`` over the frames of ``generated``, or over the crops of its face tracks when ``faces`` are given
    (``region = "face"``). Raises the video's :class:`VideoError` when it cannot be read, and
    :class:`NoFaceTrackError` when no track has a frame."""
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.media.prefetch import prefetch

    whole = _Values(measures)
    per_track = [_Values(measures) for _ in (faces.tracks if faces is not None else ())]
    croppers: list[TrackCropper] = []
    first = 0
    with closing(prefetch(open_video(generated, limits).frames(batch_size, pix_fmt="rgb24"))) as batches:
        for batch in batches:
            if faces is None:
                whole.add(batch)
            else:
                if not croppers:
                    height, width = batch.shape[1:3]
                    croppers = [
                        TrackCropper(track, height, width, crop_scale=faces.crop_scale) for track in faces.tracks
                    ]
                for cropper, values in zip(croppers, per_track):
                    crops = cropper.crop(batch, first)
                    if len(crops):
                        values.add(crops)
            first += len(batch)
    if faces is None:
        return GeneratedResult(first, _series(whole.values) if whole.count else {})
    used = [(track, values) for track, values in zip(faces.tracks, per_track) if values.count]
    if not used:
        raise NoFaceTrackError(
            f"none of its {len(faces.tracks)} face tracks has a frame among its {first} frames",
            path=generated,
            hint="Use region = 'frame'",
            facts={"tracks": len(faces.tracks), "frames": first},
        )
    joined = {name: array("d", [v for _, values in used for v in values.values[name]]) for name in measures}
    spans = tuple(TrackSpan(track.first_frame, track.first_frame + values.count - 1) for track, values in used)
    return GeneratedResult(first, _series(joined), spans)


def _series(values: Mapping[str, array[float]]) -> dict[str, MetricSeries]:
    return {name: MetricSeries.of(series, HIGHER_IS_BETTER[name]) for name, series in values.items()}
