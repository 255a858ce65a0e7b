"""How a video's progress is shown: a tqdm bar per stage on a terminal, a throttled line in a CI log.

A CI log is read after the fact and kept: a line per batch would bury the table, a bar's carriage returns
turn into thousands of lines. So where the stream is not a terminal a line is written at most every
``interval`` seconds, and never for a video done before the first interval ends. tqdm is imported only when
a bar is drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from pytest_lipsync.display import display_name
from pytest_lipsync.progress import STAGES, ProgressDisplay, ProgressEvent, Stage

INTERVAL_SECONDS = 5.0


class ThrottledLines:
    """One line per ``interval`` seconds at most, saying every count of the current video so far."""

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._interval = INTERVAL_SECONDS if interval is None else interval
        self._clock = clock
        self._video: str | None = None
        self._counts: dict[Stage, tuple[int, int | None]] = {}
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if event.video != self._video:
            self._video, self._counts, self._last = event.video, {}, self._clock()
        self._counts[event.stage] = (event.done, event.total)
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._write(self.line())

    def line(self) -> str:
        counts = ", ".join(
            f"{STAGES[stage]} {done}" + ("" if total is None else f"/{total}")
            for stage in STAGES
            if stage in self._counts
            for done, total in (self._counts[stage],)
        )
        return f"lipsync: {display_name(self._video or '')}: {counts}"

    def close(self) -> None:
        self._video, self._counts = None, {}


class TqdmBars:
    """A bar per stage of the current video, removed when the video is done (its result line stays)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._bars: dict[Stage, Any] = {}
        self._video: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

        if event.video != self._video:
            self.close()
            self._video = event.video
        bar = self._bars.get(event.stage)
        if bar is None:
            bar = tqdm(
                total=event.total,
                desc=STAGES[event.stage],
                unit=" windows" if event.stage == "windows" else " frames",
                file=self._stream,
                leave=False,
                position=len(self._bars),
            )
            self._bars[event.stage] = bar
        bar.update(event.done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars, self._video = {}, None


def progress_display(stream: IO[str], quiet: bool = False) -> ProgressDisplay | None:
    """Bars on a terminal, throttled lines elsewhere (CI), nothing when ``quiet``."""
    if quiet:
        return None
    if stream.isatty():
        return TqdmBars(stream)
    return ThrottledLines(lambda line: print(line, file=stream, flush=True))
