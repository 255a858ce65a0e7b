"""A finished gate run as the reports take it: plain values, not the session that gathered them.

The reports sit below the session in the layers, so they never see a session: the session (for the pytest
plugin and ``lipsync gate`` alike) hands them a :class:`RunSummary`, and a test can build one by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lipsync.gate.baseline import BaselineChange
from pytest_lipsync.gate.rules import Verdict
from pytest_lipsync.results import RunRecord, Tally, VideoScore


@dataclass(frozen=True)
class Outputs:
    """What the end of a run wrote, for the terminal summary."""

    json: Path | None = None
    baseline: BaselineChange | None = None
    baseline_path: Path | None = None
    html: Path | None = None


@dataclass(frozen=True)
class RunSummary:
    """Every score of the run in key order; every verdict by item name (the video key, or ``KEY::quality``);
    how the scores were obtained; the run's record (None when nothing was scored); what the run wrote (None
    before it has written, or where it wrote nothing); and the per-dataset metrics computed (``{"fid": 12.3}``)."""

    scores: tuple[VideoScore, ...] = ()
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)
    tally: Tally = Tally()
    run: RunRecord | None = None
    outputs: Outputs | None = None
    dataset: Mapping[str, float] = field(default_factory=dict)

    @property
    def scored(self) -> int:
        """How many videos have scores (a failed video's partial numbers do not count)."""
        return sum(1 for score in self.scores if score.ok)

    def means(self) -> dict[str, float]:
        """Dataset means of every metric over the scored videos (a failed video's partial numbers stay out)."""
        values: dict[str, list[float]] = {}
        for score in (score for score in self.scores if score.ok):
            for metric, value in score.metrics.items():
                if math.isfinite(value):
                    values.setdefault(metric, []).append(value)
        return {metric: sum(v) / len(v) for metric, v in values.items()}
