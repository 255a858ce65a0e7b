"""Face tracks (docs/protocol.md): greedy IoU tracking per scene, interpolation, and the size limits.

Tracking follows the reference loop literally, including its quirk: it removes a taken detection from the
frame's list while iterating over that list, so the detection right after a taken one is not examined in
that pass (it stays in the pool for a later track). The only liberty taken is to stop walking a scene once a
frame lies more than ``num_failed_det`` frames past the track's last detection: every later frame would stop
at its first detection without taking anything, so the tracks are the same.

With ``detect_every`` = N the detector saw every N-th frame only. Gaps are measured in frames, so the N - 1
skipped frames between two detections are a gap like any other, joined (``num_failed_det`` >= N) and filled by
the same interpolation; ``min_track`` counts frames, so each detection stands for the N frames it samples: a
candidate is kept when ``detections * N > min_track`` (with N = 1, the reference's ``detections > min_track``).

Candidates that fail a limit are reported (first/last frame, detection count, face size, which limit), so
that a video without a usable track can say what was found and which setting rejected it. Scenes shorter
than ``min_track`` frames are tracked for that report only; their tracks are never kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.faces.crop import smoothed_geometry

IOU_THRESHOLD = 0.5

Box = tuple[float, float, float, float]
Detection = tuple[int, Box]
Rejection = Literal["scene_length", "min_track", "min_face_size"]


@dataclass(frozen=True, eq=False)
class Track:
    """One face over consecutive frames: interpolated boxes and the smoothed crop geometry.

    ``frames`` (N,) int64 are consecutive frame numbers; ``boxes`` (N, 4) float64 x1, y1, x2, y2 in pixels;
    ``s``, ``cx``, ``cy`` (N,) the median-filtered half size and centre the crop uses; ``detections`` the
    number of detector boxes the track was built from (at least ``min_track + 1``).
    """

    frames: np.ndarray
    boxes: np.ndarray
    s: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    detections: int

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1])


@dataclass(frozen=True)
class RejectedTrack:
    """A candidate track that a limit rejected; ``face_size`` is known once it was interpolated."""

    first_frame: int
    last_frame: int
    detections: int
    face_size: float | None
    reason: Rejection


@dataclass(frozen=True)
class Tracking:
    """Kept tracks in scene order, and the rejected candidates."""

    tracks: tuple[Track, ...]
    rejected: tuple[RejectedTrack, ...]

    @property
    def longest_rejected(self) -> RejectedTrack | None:
        """The rejected candidate with the most detections (the first of equals)."""
        return max(self.rejected, key=lambda track: track.detections, default=None)


def build_tracks(
    detections: Sequence[np.ndarray],
    scenes: Sequence[tuple[int, int]],
    *,
    min_track: int = 100,
    num_failed_det: int = 25,
    min_face_size: float = 100,
    detect_every: int = 1,
) -> Tracking:
    """Tracks from per-frame (K, 5) detections (indexed by frame number) within each (start, end) scene;
    ``detect_every`` says how many frames each detection stands for (the frames between were not looked at)."""
    if min_track < 1:
        raise ConfigError(f"min_track must be at least 1, got {min_track}", hint="A track needs two detections")
    tracks: list[Track] = []
    rejected: list[RejectedTrack] = []
    for start, end in scenes:
        pool = [[(frame, _box(row)) for row in detections[frame]] for frame in range(start, min(end, len(detections)))]
        for candidate in _greedy_tracks(pool, start, num_failed_det):
            frames = np.array([frame for frame, _ in candidate], dtype=np.int64)
            if end - start < min_track:
                rejected.append(_rejected(frames, None, "scene_length"))
            elif len(candidate) * detect_every <= min_track:
                rejected.append(_rejected(frames, None, "min_track"))
            else:
                grid, boxes = _interpolate(frames, np.array([box for _, box in candidate]))
                size = max(float(np.mean(boxes[:, 2] - boxes[:, 0])), float(np.mean(boxes[:, 3] - boxes[:, 1])))
                if size > min_face_size:
                    tracks.append(Track(grid, boxes, *smoothed_geometry(boxes), detections=len(candidate)))
                else:
                    rejected.append(_rejected(frames, size, "min_face_size"))
    return Tracking(tuple(tracks), tuple(rejected))


def _box(row: np.ndarray) -> Box:
    x1, y1, x2, y2 = row[:4].tolist()
    return x1, y1, x2, y2


def _rejected(frames: np.ndarray, face_size: float | None, reason: Rejection) -> RejectedTrack:
    return RejectedTrack(int(frames[0]), int(frames[-1]), len(frames), face_size, reason)


def _greedy_tracks(pool: list[list[Detection]], start: int, num_failed_det: int) -> Iterator[list[Detection]]:
    """The reference's ``track_shot`` loop over one scene's detections; ``pool`` is consumed."""
    first = 0
    while True:
        while first < len(pool) and not pool[first]:
            first += 1
        if first == len(pool):
            return
        track: list[Detection] = []
        for offset, faces in enumerate(pool[first:], start=first):
            if track and start + offset - track[-1][0] > num_failed_det:
                break
            _extend(track, faces, num_failed_det)
        yield track


def _extend(track: list[Detection], faces: list[Detection], num_failed_det: int) -> None:
    """One frame of the loop: take matching detections, skipping the one after each taken (the quirk)."""
    k = 0
    while k < len(faces):
        frame, box = faces[k]
        if track and frame - track[-1][0] > num_failed_det:
            return
        if not track or _iou(box, track[-1][1]) > IOU_THRESHOLD:
            track.append(faces.pop(k))
        k += 1


def _iou(a: Box, b: Box) -> float:
    """The reference's IoU in Python floats (no +1 on areas); 0 where both boxes are empty."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return inter / union if union else 0.0


def _interpolate(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation to every frame from first to last, in ``scipy.interpolate.interp1d``'s arithmetic."""
    grid = np.arange(frames[0], frames[-1] + 1)
    hi = np.clip(np.searchsorted(frames, grid), 1, len(frames) - 1)
    lo = hi - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # two detections in one frame, as the reference
        slope = (boxes[hi] - boxes[lo]) / (frames[hi] - frames[lo])[:, None]
    return grid, slope * (grid - frames[lo])[:, None] + boxes[lo]
