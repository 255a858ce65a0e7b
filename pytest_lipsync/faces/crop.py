"""Face crops of a track (docs/protocol.md): smoothing, the padded crop window, and the track's audio.

The reference pads every frame by ``int(s * (1 + 2 * crop_scale))`` pixels of value 110 and slices the
padded image with ``int()``-truncated bounds. Padding a full frame per crop is the expensive part, so the
window is computed first and resolved with Python's slicing rules on the padded size (a negative bound
counts from the end, bounds past the end are clamped), and only that window is filled: the pad value where
it leaves the frame, the frame's pixels elsewhere. The pixels are the same as the reference's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.errors import VideoError

if TYPE_CHECKING:
    from pytest_lipsync.faces.tracking import Track

MEDIAN_KERNEL = 13
PAD_VALUE = 110
CROP_SIZE = 224
FRAME_RATE = 25
SAMPLE_RATE = 16000
# The reference cuts the track's audio with ffmpeg -ss/-to at frame / 25 s, printed with 3 decimals, which
# are exact (40 ms per frame); ffmpeg's trim rounds time * 16000 to the nearest sample, which is exact too.
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE


def median_filter(values: np.ndarray, kernel: int = MEDIAN_KERNEL) -> np.ndarray:
    """Running median with zero padding at both ends, as ``scipy.signal.medfilt``."""
    half = kernel // 2
    padded = np.concatenate([np.zeros(half), np.asarray(values, dtype=np.float64), np.zeros(half)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel), axis=1)


def smoothed_geometry(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median-filtered half size ``s`` and centre ``cx``, ``cy`` of (N, 4) x1, y1, x2, y2 boxes."""
    x1, y1, x2, y2 = boxes.T
    half_size = np.maximum(y2 - y1, x2 - x1) / 2
    return median_filter(half_size), median_filter((x1 + x2) / 2), median_filter((y1 + y2) / 2)


def crop_windows(
    s: np.ndarray, cx: np.ndarray, cy: np.ndarray, height: int, width: int, *, crop_scale: float = 0.4
) -> np.ndarray:
    """(N, 5) int64 windows (pad, top, bottom, left, right) for a track, in the reference's float arithmetic.

    Python's ``int()`` truncates toward zero, so does ``np.trunc``; the slice bounds are then resolved
    against the padded frame's size exactly as ``frame[top:bottom, left:right]`` would.
    """
    s, cx, cy = (np.asarray(v, dtype=np.float64) for v in (s, cx, cy))
    pad = np.trunc(s * (1 + 2 * crop_scale))
    my, mx = cy + pad, cx + pad
    top = _slice_bound(np.trunc(my - s), height + 2 * pad)
    bottom = _slice_bound(np.trunc(my + s * (1 + 2 * crop_scale)), height + 2 * pad)
    left = _slice_bound(np.trunc(mx - s * (1 + crop_scale)), width + 2 * pad)
    right = _slice_bound(np.trunc(mx + s * (1 + crop_scale)), width + 2 * pad)
    return np.column_stack([pad, top, bottom, left, right]).astype(np.int64)


def _slice_bound(bound: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Where a slice bound lands in a sequence of ``length`` items: negatives count from the end, clamped."""
    return np.where(bound < 0, np.maximum(bound + length, 0), np.minimum(bound, length))


def crop_face(frame: np.ndarray, s: float, cx: float, cy: float, *, crop_scale: float = 0.4) -> np.ndarray:
    """The 224x224 crop of one frame, given the track's smoothed ``s``, ``cx``, ``cy`` at that frame."""
    height, width = frame.shape[:2]
    window = crop_windows(np.array([s]), np.array([cx]), np.array([cy]), height, width, crop_scale=crop_scale)
    return _crop(frame, window[0])


def _crop(frame: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The window of the frame padded with 110, resized bilinearly, without padding the whole frame."""
    import cv2

    pad, top, bottom, left, right = window.tolist()
    if bottom <= top or right <= left:
        raise VideoError(
            f"the face crop window is empty (rows {top}:{bottom}, columns {left}:{right} of the padded frame); "
            "the reference pipeline fails on this track too",
            hint="A track this short or this small cannot be cropped: raise min_track or min_face_size",
        )
    canvas = np.full((bottom - top, right - left, frame.shape[2]), PAD_VALUE, dtype=frame.dtype)
    height, width = frame.shape[:2]
    rows = slice(max(top - pad, 0), min(bottom - pad, height))
    cols = slice(max(left - pad, 0), min(right - pad, width))
    if rows.stop > rows.start and cols.stop > cols.start:
        canvas[rows.start + pad - top : rows.stop + pad - top, cols.start + pad - left : cols.stop + pad - left] = (
            frame[rows, cols]
        )
    return cv2.resize(canvas, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


class TrackCropper:
    """Crops one track's frames as batches of the 25 fps stream go by; windows are computed once."""

    def __init__(self, track: Track, height: int, width: int, *, crop_scale: float = 0.4) -> None:
        self.track = track
        self._windows = crop_windows(track.s, track.cx, track.cy, height, width, crop_scale=crop_scale)

    def crop(self, frames: np.ndarray, first_frame: int) -> np.ndarray:
        """Crops (n, 224, 224, 3) of the track's frames among ``frames``, whose first is ``first_frame``."""
        start = max(self.track.first_frame, first_frame)
        stop = min(self.track.last_frame + 1, first_frame + len(frames))
        crops = [
            _crop(frames[index - first_frame], self._windows[index - self.track.first_frame])
            for index in range(start, stop)
        ]
        return np.stack(crops) if crops else np.empty((0, CROP_SIZE, CROP_SIZE, frames.shape[3]), frames.dtype)


def audio_span(track: Track) -> tuple[int, int]:
    """Sample range [start, stop) of the 16 kHz audio from first_frame / 25 s to (last_frame + 1) / 25 s.

    Slice the audio with it: where the audio ends early, the slice stops there, as ffmpeg's cut does.
    """
    return track.first_frame * SAMPLES_PER_FRAME, (track.last_frame + 1) * SAMPLES_PER_FRAME
