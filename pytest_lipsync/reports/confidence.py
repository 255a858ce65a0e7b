"""Reading SyncNet's per-frame confidence: the threshold band and its colours, shared by the confidence plot
and the boxes of ``lipsync visualize`` so that both say the same thing about the same frame.

Per-frame confidence (docs/protocol.md: median(mean_dist) - d[i][argmin], median-filtered over 9 windows) is on the
scale of LSE-C, which is its mean over a track (up to the filter). So the threshold is the gate's ``lse_c_min``
for that video when the project sets one, else :data:`DEFAULT_THRESHOLD`. Around it lies a band of
``+-``:data:`BAND_MARGIN`: frames in it are uncertain rather than good or bad, since one frame's confidence is
far noisier than a track's mean. The colours: red below the band, amber in it, green above it. (The
reference's ``run_visualise.py`` ramps from red at 0 to green at 10.2 instead; a band tied to the gate's own
threshold answers the question a CI user has: which frames pull this video under its limit?)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_lipsync.gate.rules import GateRules

DEFAULT_THRESHOLD = 3.0
# Window i covers frames i..i+4 of its track: its confidence belongs to its middle frame, i + 2.
WINDOW_CENTRE = 2
BAND_MARGIN = 1.0
# BGR, as OpenCV draws; the plots use the same colours (as RGB).
RED = (40, 40, 220)
AMBER = (0, 170, 255)
GREEN = (60, 180, 40)


@dataclass(frozen=True)
class ConfidenceBand:
    """The threshold a frame's confidence is read against, and where it came from (for legends)."""

    threshold: float = DEFAULT_THRESHOLD
    source: str = "default"

    @property
    def low(self) -> float:
        return self.threshold - BAND_MARGIN

    @property
    def high(self) -> float:
        return self.threshold + BAND_MARGIN

    @property
    def label(self) -> str:
        origin = "lse_c_min" if self.source == "gate" else "default threshold"
        return f"{origin} {self.threshold:g} +- {BAND_MARGIN:g}"

    def colour(self, confidence: float) -> tuple[int, int, int]:
        """BGR: red below the band, amber in it, green above it."""
        if confidence < self.low:
            return RED
        return AMBER if confidence <= self.high else GREEN


def band_for(rules: GateRules | None, key: str) -> ConfidenceBand:
    """The band of the video ``key``: its ``lse_c_min`` (overrides included) when the gate has one."""
    limit = None if rules is None else rules.for_video(key).thresholds.lse_c_min
    return ConfidenceBand() if limit is None else ConfidenceBand(limit, "gate")


def confidence_at(frame_confidence: Sequence[float], index: int) -> float | None:
    """The confidence shown for the track's ``index``-th frame: of the 5-frame window centred on it (window
    ``index - 2``), the first or last window's for the frames at the track's ends; None without windows."""
    if not frame_confidence:
        return None
    return frame_confidence[min(max(index - WINDOW_CENTRE, 0), len(frame_confidence) - 1)]


def rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    """A BGR colour as matplotlib's RGB in 0..1."""
    blue, green, red = colour
    return red / 255, green / 255, blue / 255
