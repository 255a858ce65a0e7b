"""Scene cuts (docs/protocol.md), fed the frames the pipeline already decoded.

The reference ran PySceneDetect 0.5.x, whose ``ContentDetector`` (threshold 30, min_scene_len 15) scored
each frame by the mean absolute HSV difference to the previous one, on frames subsampled ``[::d, ::d]``, and
accepted a cut when the score reached the threshold and at least 15 frames had passed since the last cut,
counting from the first frame. PySceneDetect 0.7's ``ContentDetector`` computes the same score (edges are
weighted 0), and its flash filter in ``SUPPRESS`` mode applies the same minimum length, also starting from
the first frame; its ``post_process`` adds no cut. The scene list is what 0.5.x's ``get_scene_list`` gave:
consecutive (start, end) frame ranges, end exclusive, split at each cut frame.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scenedetect import ContentDetector

FRAME_RATE = 25.0
# PySceneDetect 0.5.x's subsampling factor by frame width (its DEFAULT_DOWNSCALE_FACTORS), widest first.
_SUBSAMPLING = ((3200, 12), (2100, 8), (1700, 6), (1200, 5), (900, 4), (600, 3), (400, 2))

Scene = tuple[int, int]


def subsampling_factor(width: int) -> int:
    """Keep every d-th pixel of frames this wide (1 below 400 pixels)."""
    return next((factor for min_width, factor in _SUBSAMPLING if width >= min_width), 1)


class SceneCutter:
    """Incremental scene detection: ``feed`` batches of BGR frames in stream order, then ``finish``."""

    def __init__(self, *, scene_threshold: float = 30.0, min_scene_len: int = 15) -> None:
        self.scene_threshold = scene_threshold
        self.min_scene_len = min_scene_len
        self._detector: ContentDetector | None = None
        self._frames = 0
        self._cuts: list[int] = []

    def feed(self, frames: np.ndarray) -> None:
        """Process the next frames, a uint8 BGR array (B, H, W, 3)."""
        from scenedetect import FrameTimecode

        detector = self._detector or self._new_detector()
        factor = subsampling_factor(frames.shape[2])
        for frame in frames:
            small = np.ascontiguousarray(frame[::factor, ::factor])
            cuts = detector.process_frame(FrameTimecode(self._frames, FRAME_RATE), small)
            self._cuts += [cut.frame_num for cut in cuts]
            self._frames += 1

    def finish(self) -> list[Scene]:
        """The scenes covering every frame fed; one scene when there is no cut, none when no frame was fed."""
        from scenedetect import FrameTimecode

        if self._detector is not None:
            last = FrameTimecode(self._frames - 1, FRAME_RATE)
            self._cuts += [cut.frame_num for cut in self._detector.post_process(last)]
        bounds = [0, *sorted(set(self._cuts)), self._frames]
        return [(start, end) for start, end in pairwise(bounds) if end > start]

    def _new_detector(self) -> ContentDetector:
        from scenedetect import ContentDetector
        from scenedetect.detector import FlashFilter

        self._detector = ContentDetector(
            threshold=self.scene_threshold,
            min_scene_len=self.min_scene_len,
            filter_mode=FlashFilter.Mode.SUPPRESS,
        )
        return self._detector
