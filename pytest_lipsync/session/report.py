"""``lipsync gate REPORT.json``: the pytest gate's verdicts, for scores that were computed elsewhere.

A CI matrix scores shards on several runners; the verdict comes after ``lipsync merge``, on a machine
without models. It must be the verdict the pytest run would have given, so nothing here judges: a
:class:`GateSession` gets the report's videos and a :class:`ReportScores` in place of scoring, and the
same verdict, baseline, summary and GitHub code runs. What a report cannot say is how a video's ground
truth failed to match; such a video fails its quality verdict with the generic reason.

Every metric the report holds is judged: a report with PSNR/SSIM gets quality verdicts whether or not this
project configures a reference, since its videos were compared with ground truth when they were scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lipsync.config.resolution import Layer, environment_warnings, standard_layers
from pytest_lipsync.display import plural
from pytest_lipsync.gate.rules import format_verdict
from pytest_lipsync.metrics import DATASET_METRICS, QUALITY_METRICS, SYNC_METRICS
from pytest_lipsync.reports.outcome import Outputs
from pytest_lipsync.results import Report, RunRecord, Tally, VideoScore
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.session.run import GateSession
from pytest_lipsync.settings import Settings

# Options a gate of a finished report must not take from pyproject.toml or LIPSYNC_*: it writes no
# results JSON (the report is the results) and scores no shard.
_NOT_FOR_REPORTS: dict[str, Any] = {"json": None, "shard": None}


class ReportScores:
    """The report's scores, served where a :class:`ScoreService` would score (entries are keyed by path)."""

    def __init__(self, report: Report, name: str) -> None:
        self._report = report
        self._by_key = {video.path: video for video in report.videos}
        self.tally = Tally(report=name)

    def score(self, path: Path, settings: Settings, reference: Path | None = None) -> VideoScore:
        return self._by_key[path.as_posix()]

    def run_record(self, settings: Settings) -> RunRecord:
        return self._report.run


@dataclass(frozen=True)
class GateResult:
    """The gate's answer and what to print: failure details, then the pytest run's summary lines."""

    passed: bool
    lines: tuple[str, ...]
    outputs: Outputs
    warnings: tuple[str, ...] = ()  # settings that are probably not what was meant (for stderr)


def report_entries(report: Report) -> tuple[VideoEntry, ...]:
    """A gate entry per video, its reference the ground truth the report compared it with (if any)."""
    return tuple(_entry(video) for video in report.videos)


def gate_report(
    report: Report, name: str, project: Path, environ: Mapping[str, str], options: Layer, here: Path
) -> GateResult:
    """Judge every video of ``report`` with the project's rules (pyproject < environment < ``options``)."""
    from pytest_lipsync.reports.github import publish_step_summary
    from pytest_lipsync.reports.summary import summary_lines

    command_line = Layer(options.kind, {**options.values, **_NOT_FOR_REPORTS}, options.origin)
    layers = standard_layers(project / "pyproject.toml", environ, command_line, here)
    quality = any(_compared(video) or set(video.metrics) & set(QUALITY_METRICS) for video in report.videos)
    scores = ReportScores(report, name)
    gate = GateSession(
        lambda: layers,
        project,
        None,
        videos=report_entries(report),
        service=scores,
        report_quality=quality,
        dataset=report.dataset,
    )
    gate.start(check_baseline=True)
    for metric in DATASET_METRICS:  # before any video: a threshold the report cannot answer is a usage error
        if metric in gate.dataset or metric in gate.config.gate.thresholds.limits():
            gate.dataset_verdict(metric)
    for entry in gate.videos:
        gate.verdict(entry, SYNC_METRICS)
        if gate.with_quality:
            gate.verdict(entry, QUALITY_METRICS)
    failed = [gate.verdicts[key] for key in sorted(gate.verdicts) if gate.verdicts[key].outcome == "failed"]
    outputs = gate.finish()
    summary = gate.summary(outputs)
    publish_step_summary(summary)
    details = [line for verdict in failed for line in (*format_verdict(verdict).splitlines(), "")]
    judged = plural(len(gate.verdicts), "verdict")
    verdict = f"lipsync gate: {'failed' if failed else 'passed'}: {len(failed)} of {judged} failed"
    unmatched = gate.unmatched_overrides()  # a report that reaches here holds every video of its run
    warnings = (*environment_warnings(environ), *unmatched)
    return GateResult(not failed, (*details, *summary_lines(summary), verdict), outputs, warnings)


def _entry(video: VideoScore) -> VideoEntry:
    entry = VideoEntry(video.path, Path(video.path))
    reference = (video.quality or {}).get("reference")
    return entry if reference is None else entry.with_reference(Path(reference))


def _compared(video: VideoScore) -> bool:
    """Whether the video was paired with ground truth when scored (its ``quality`` names a match, even a failed
    one); a section without a match holds only metrics that need none (CPBD)."""
    return video.quality is not None and video.quality.get("match") is not None
