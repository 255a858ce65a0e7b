"""The per-video time limit (the ``timeout`` setting), checked cooperatively between batches.

A video that takes far longer than its length warrants (a decoder crawling through damage, a hostile file,
a stuck device) must not hold a CI job until its own timeout kills everything. Every streaming loop (packet
by packet in decoding, batch by batch in detection, cropping and SyncNet, through ``Timings.add``) calls
:meth:`Deadline.check`, which ends the video with ``timeout``. A hang inside native code never returns to
a check: ``lipsync score --workers N`` then kills the worker (see ``workers``).

The default grows with the video: 60 s (model warm-up, a slow first batch) plus 20 s per second of video,
from the header's duration, which is several times what the pipeline protocol needs on a CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lipsync.errors import ScoringTimeoutError

BASE_SECONDS = 60.0
SECONDS_PER_VIDEO_SECOND = 20.0


def video_timeout(setting: float | None, duration: float | None) -> float:
    """Seconds a video may take: the ``timeout`` setting, else the default for its header ``duration``.

    A header without a duration gets the base alone: the setting is the way out, and the message says so.
    """
    if setting is not None:
        return float(setting)
    return BASE_SECONDS + SECONDS_PER_VIDEO_SECOND * (duration or 0.0)


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
        hint="Raise the 'timeout' setting (seconds per video; default 60 s + 20 x the video's duration) if the "
        "video is just long or the machine slow",
        facts={"elapsed": round(elapsed, 3), "limit": limit},
    )
