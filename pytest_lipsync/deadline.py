"""The per-video time limit (the ``timeout`` setting), checked cooperatively between batches.

A video that takes far longer than its length warrants (a decoder crawling through damage, a hostile file,
a stuck device) must not hold a CI job until its own timeout kills everything. Every streaming loop (packet
by packet in decoding, batch by batch in detection, cropping and SyncNet, through ``Timings.add``) calls
:meth:`Deadline.check`, which ends the video with ``timeout``. A hang inside native code never returns to
a check: ``lipsync score --workers N`` then kills the worker (see ``workers``).

The default grows with the work: 60 s (model warm-up, a slow first batch) plus 100 s per second of video for
every 1280x720 of frame area (at least one), from the header. The slowest setting this tool supports, the
pipeline protocol on one CPU thread, measured 12-13 s per second of 720p video and 27 s per second of 1080p
(``lipsync bench``, README "Speed"): the default leaves a margin of about 7x for a slower or loaded machine.
A first default of 20 s per second of video, whatever the size, stopped healthy 1080p videos on that CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lipsync.errors import ScoringTimeoutError

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
