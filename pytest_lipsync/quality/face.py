"""PSNR/SSIM inside the face (``region = "face"``): the crops of the generated video's face tracks.

A lip-sync edit changes the mouth and leaves the background alone, so a full-frame PSNR is dominated by
pixels nobody touched. Here both videos are cut at the *generated* video's track boxes with the crop geometry
of docs/protocol.md (median-smoothed boxes, the padded window, 224x224 bilinear: :class:`TrackCropper`), and crop
*j* of the ground truth is compared with crop *j* of the generated video. Cutting both at the same boxes
keeps the comparison pixel for pixel; the ground truth's own detections would move with its own faces.

Every (track, frame) crop counts once: the means are over all crops of all tracks, so a track weighs by its
length, and two faces in one frame are two crops. The series run track after track, each in frame order.
Frames arrive as the common prefix streams by; a track's frames past that prefix are not measured, and the
result names the frames of each track that were (``tracks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.errors import NoFaceTrackError
from pytest_lipsync.faces.crop import TrackCropper
from pytest_lipsync.quality.accumulate import Measure, QualityAccumulator, QualityResult, TrackSpan
from pytest_lipsync.quality.alignment import LengthAlignment
from pytest_lipsync.quality.settings import QualitySettings

if TYPE_CHECKING:
    from pytest_lipsync.faces.tracking import Track


@dataclass(frozen=True)
class FaceRegions:
    """The generated video's face tracks (on its 25 fps frames) and the crop scale that cuts them."""

    tracks: tuple[Track, ...]
    crop_scale: float = 0.4


class FaceCropAccumulator:
    """Measures the face crops of aligned (reference, generated) batches, one accumulator per track.

    The crop windows depend on the frame size, known from the first batch (the reference is already
    resized to the generated size by then when ``resize_reference``).
    """

    def __init__(
        self,
        faces: FaceRegions,
        settings: QualitySettings,
        device: str = "cpu",
        *,
        video: Path | None = None,
        measures: Mapping[str, Measure] | None = None,
    ) -> None:
        self._faces = faces
        self._settings = settings
        self._video = video
        self._per_track = [QualityAccumulator(settings, device, measures) for _ in faces.tracks]
        self._croppers: list[TrackCropper] = []
        self._first_frame = 0

    def add(self, gt: np.ndarray, gen: np.ndarray) -> None:
        """Crop every track in progress from both batches of frames ``first_frame ...`` and measure the crops."""
        if not self._croppers:
            height, width = gen.shape[1:3]
            scale = self._faces.crop_scale
            self._croppers = [TrackCropper(track, height, width, crop_scale=scale) for track in self._faces.tracks]
        for cropper, measured in zip(self._croppers, self._per_track):
            gen_crops = cropper.crop(gen, self._first_frame)
            if len(gen_crops):
                measured.add(cropper.crop(gt, self._first_frame), gen_crops)
        self._first_frame += len(gen)

    def result(self, lengths: LengthAlignment, resized_reference: bool) -> QualityResult:
        """All crops, track after track; tracks without a compared frame are left out."""
        used = [(track, measured) for track, measured in zip(self._faces.tracks, self._per_track) if measured.count]
        if not used:
            raise NoFaceTrackError(
                f"none of its {len(self._faces.tracks)} face tracks has a frame among the {lengths.compared} "
                "frames compared with the reference",
                path=self._video,
                hint="Check that the reference is this video's ground truth, or use region = 'frame'",
                facts={"tracks": len(self._faces.tracks), "frames": lengths.compared},
            )
        combined = QualityAccumulator(self._settings, measures=self._per_track[0].measures)
        for _, measured in used:
            combined.extend(measured)
        spans = tuple(TrackSpan(track.first_frame, track.first_frame + measured.count - 1) for track, measured in used)
        return combined.result(lengths, resized_reference, spans)
