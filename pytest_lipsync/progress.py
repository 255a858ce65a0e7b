"""What the scoring stages say while one video is being scored, for a front-end to show.

Scoring a long video takes minutes; a CI log that stays silent that long looks hung. The stages count
their work here (frames decoded, frames searched for faces, SyncNet windows scored) and know nothing of how
it is shown: a front-end passes a :data:`ProgressHook` (a tqdm bar on a terminal, a throttled line in a CI
log, pytest's terminal reporter) or nothing, and then counting costs one ``None`` test per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Stage = Literal["frames", "faces", "windows"]
# What each counter means, in the order a video goes through them (and the order lines name them).
STAGES: dict[Stage, str] = {"frames": "frames decoded", "faces": "frames searched for faces", "windows": "windows"}


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` (``None``: not known in advance) units of ``stage`` for ``video`` so far."""

    video: str
    stage: Stage
    done: int
    total: int | None = None


ProgressHook = Callable[[ProgressEvent], None]


@dataclass
class VideoProgress:
    """The counters of one video, which turn each batch's count into a cumulative event for ``hook``."""

    video: str
    hook: ProgressHook
    totals: dict[Stage, int] = field(default_factory=dict)
    done: dict[Stage, int] = field(default_factory=dict)

    def advance(self, stage: Stage, count: int) -> None:
        if count <= 0:
            return
        self.done[stage] = self.done.get(stage, 0) + count
        self.hook(ProgressEvent(self.video, stage, self.done[stage], self.totals.get(stage)))


class ProgressDisplay(Protocol):
    """A hook that also hears when its video is done (a bar to close, a last line to write)."""

    def __call__(self, event: ProgressEvent) -> None: ...

    def close(self) -> None: ...
