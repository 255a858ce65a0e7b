"""The cropped protocol: the video's frames already are the face crops (the reference's "cropped videos" script).

Every frame is resized to SyncNet's 224x224 input, after the JPEG step the reference takes in ``reference``
fidelity, and the whole clip is scored as one track: no scene cuts, no detector, no tracking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.errors import TooShortError
from pytest_lipsync.faces.crop import CROP_SIZE
from pytest_lipsync.results import TrackScore
from pytest_lipsync.settings import Settings

if TYPE_CHECKING:
    from pytest_lipsync.media.decode import VideoSource
    from pytest_lipsync.sync.lse import SyncScorer, Timings


class CroppedProtocol:
    """Scores a face-crop video as one track with the given SyncNet stage."""

    def __init__(self, sync: SyncScorer, settings: Settings) -> None:
        self.sync = sync
        self.settings = settings

    def score(self, source: VideoSource, timings: Timings) -> tuple[tuple[TrackScore, ...], int, int]:
        """The track, the video's frames and the sound's frames (25 fps): the shorter bounds the windows."""
        from pytest_lipsync.media.decode import SAMPLES_PER_FRAME
        from pytest_lipsync.media.prefetch import prefetch
        from pytest_lipsync.sync.lse import TrackTooShort

        clock = time.perf_counter()
        path = source.path
        audio = source.audio()
        timings.add("audio", clock)
        counter = _Counter()
        frames = counter.count(_cropped_frames(source, self.settings, self.sync.batch_size))
        crops = prefetch(frames, background=self.sync.device.type == "cpu")
        try:
            curve, windows = self.sync.score_track(crops, audio, timings)
        except TrackTooShort as exc:
            raise TooShortError(
                f"too short to score: {exc.frames} frames of video and {exc.audio_frames} frames "
                "(40 ms each) of audio; SyncNet needs at least 6 of both",
                path=path,
                hint="Score clips of at least 0.24 s with sound",
                facts={"frames": exc.frames, "audio_frames": exc.audio_frames},
            ) from None
        return (curve.track_score(0, counter.frames - 1, windows),), counter.frames, len(audio) // SAMPLES_PER_FRAME


class _Counter:
    """Counts frames as they stream past, for the video's length."""

    def __init__(self) -> None:
        self.frames = 0

    def count(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in batches:
            self.frames += len(batch)
            yield batch


def _cropped_frames(source: VideoSource, settings: Settings, batch_size: int) -> Iterator[np.ndarray]:
    """The cropped protocol's input: every frame (after the JPEG step in reference fidelity) at 224x224."""
    import cv2

    from pytest_lipsync.media.decode import batched
    from pytest_lipsync.media.reencode import JPEG_PIX_FMT, jpeg_round_trip

    if settings.fidelity == "reference":
        frames = jpeg_round_trip(source.decoded(JPEG_PIX_FMT))
    else:
        frames = (frame.to_ndarray() for frame in source.decoded("bgr24"))
    return batched((cv2.resize(frame, (CROP_SIZE, CROP_SIZE)) for frame in frames), batch_size)
