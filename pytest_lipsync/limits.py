"""What one video may cost: its frame size, its share of damaged frames, and its time.

:class:`VideoLimits` gathers the three settings so that every place that opens a video (LSE, ground truth,
``lipsync visualize``, the workers) applies all of them. The time limit is checked cooperatively: every
streaming loop (packet by packet in decoding, batch by batch in detection, cropping and SyncNet, through
``Timings.add``) calls :meth:`Deadline.check`, which ends the video with ``timeout``. A hang inside native
code never returns to a check: ``lipsync score --workers N`` then kills the worker (``scale.workers``).

The default time grows with the work: 60 s (model warm-up, a slow first batch) plus 100 s per second of
video for every 1280x720 of frame area (at least one), from the header. That is about 7x what the slowest
supported setting, the pipeline protocol on one CPU thread, takes (``docs/benchmarks.md``): room for a
slower or loaded machine, while a video that is stuck still ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lipsync.errors import ScoringTimeoutError

MAX_PIXELS = 36_000_000  # a little over 8K (7680x4320 is 33.2 M pixels): the ``max_pixels`` default
# The ``max_corrupt_fraction`` default: a damaged frame touches the 5 SyncNet windows around it, so 1 % of
# damaged frames touches at most 5 % of the windows the means are taken over; more fails the video.
MAX_CORRUPT_FRACTION = 0.01
BASE_SECONDS = 60.0
SECONDS_PER_VIDEO_SECOND = 100.0  # for each 1280x720 of frame area
AREA_UNIT = 1280 * 720
DEFAULT_RULE = "60 s + 100 s per second of video for each 1280x720 of frame area"


def video_timeout(setting: float | None, duration: float | None, pixels: int = 0) -> float:
    """Seconds a video may take: the ``timeout`` setting, else the default for its header ``duration`` and
    frame size (``pixels`` per frame; detection's cost grows with it).

    A header without a duration gets the base alone: the setting is the way out, and the message says so.
    """
    if setting is not None:
        return float(setting)
    return BASE_SECONDS + SECONDS_PER_VIDEO_SECOND * max(1.0, pixels / AREA_UNIT) * (duration or 0.0)


@dataclass(frozen=True)
class Deadline:
    """When scoring ``path`` must have ended: ``limit`` seconds after ``started`` (``time.monotonic``)."""

    path: Path
    limit: float
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise :class:`ScoringTimeoutError` once the limit is passed."""
        elapsed = self.elapsed
        if elapsed > self.limit:
            raise timeout_error(self.path, elapsed, self.limit)


def timeout_error(path: Path, elapsed: float, limit: float, *, killed: bool = False) -> ScoringTimeoutError:
    """The error of a video stopped after ``elapsed`` seconds, over its ``limit``."""
    how = "; the worker process scoring it did not respond and was killed" if killed else ""
    return ScoringTimeoutError(
        f"scoring was stopped after {elapsed:.3g} s, over the time limit of {limit:.3g} s{how}",
        path=path,
        hint=f"Raise the 'timeout' setting (seconds per video; default {DEFAULT_RULE}) if the "
        "video is just long or the machine slow",
        facts={"elapsed": round(elapsed, 3), "limit": limit},
    )


@dataclass(frozen=True)
class VideoLimits:
    """What opening one video may cost: its frame size, its share of damaged frames, its time.

    The settings of the same names, gathered so that every place that opens a video (LSE, ground truth,
    ``lipsync visualize``, the workers) applies all three, not just the one it remembered.
    """

    max_pixels: int = MAX_PIXELS
    max_corrupt_fraction: float = MAX_CORRUPT_FRACTION
    timeout: float | None = None
    # When the video's clock started (``time.monotonic``); None: when the file is opened. Scoring one video
    # opens it more than once (LSE, the face region, ground truth): one clock for all, as ``timeout`` is per video.
    started: float | None = None
