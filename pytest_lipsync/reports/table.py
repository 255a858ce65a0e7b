"""The plain-text table of scores printed by ``lipsync score``, ``lipsync gate`` and the pytest terminal summary.

The columns are the metric table's per-video metrics (``pytest_lipsync.metrics``), in its order: LSE-D, LSE-C
and the offset always, PSNR and SSIM when any video was compared with ground truth, an opt-in metric (LPIPS,
CPBD) when any video has it. A row shows every metric the video has, even when it failed: a broken ground
truth fails the video but leaves its LSE numbers to read.

The last two columns say what happened to the video. ``lipsync score`` has no rules, so its ``result`` is
``scored`` or ``error`` (the detail names the error's kind); a gate's ``verdict`` is ``passed``, ``failed``
(a rule broken: the detail lists the broken rules), ``allowed`` (an error of a kind the ``allow`` setting
expects) or ``error`` (the video could not be scored), so that a row never reads "ok" beside a failed gate.
The detail is cut to :data:`MESSAGE_WIDTH` characters: the failure text above the table shows all of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_lipsync.display import display_name
from pytest_lipsync.metrics import BY_NAME, DIGITS, HIGHER_IS_BETTER, LABELS, VIDEO_METRICS
from pytest_lipsync.models.registry import QUALITY
from pytest_lipsync.results import RunRecord, VideoScore, WeightsRecord

if TYPE_CHECKING:
    from pytest_lipsync.gate.rules import Check, Verdict

MESSAGE_WIDTH = 60
# The frame quality networks' weights, by name.
_QUALITY = frozenset(spec.name for spec in QUALITY)
# The outcome of every gate item of a video, worst first: one failing item fails the video.
VideoOutcome = Literal["error", "failed", "allowed", "passed"]
_WORST_FIRST: tuple[VideoOutcome, ...] = ("error", "failed", "allowed", "passed")


@dataclass(frozen=True)
class VideoVerdict:
    """What the gate said about one video (its lip-sync item and its quality item together)."""

    outcome: VideoOutcome
    detail: str = ""


def video_verdicts(scores: Sequence[VideoScore], verdicts: Mapping[str, Verdict]) -> dict[str, VideoVerdict]:
    """Each judged video's verdict: the worst of its items' (``KEY`` and ``KEY::quality``), with the reason."""
    items: dict[str, list[Verdict]] = {}
    for name, verdict in verdicts.items():
        items.setdefault(name.removesuffix("::quality"), []).append(verdict)
    errors = {score.path for score in scores if score.error is not None}
    judged = {key: [_item(verdict, key in errors) for verdict in found] for key, found in items.items()}
    return {key: min(found, key=lambda v: _WORST_FIRST.index(v.outcome)) for key, found in judged.items()}


def _item(verdict: Verdict, unscored: bool) -> VideoVerdict:
    if verdict.outcome == "passed":
        return VideoVerdict("passed")
    if verdict.outcome == "xfailed":
        return VideoVerdict("allowed", verdict.reason)
    if unscored and not verdict.checks:
        return VideoVerdict("error", verdict.reason)
    broken = [_broken(check) for check in verdict.failed_checks]
    return VideoVerdict("failed", ", ".join(broken) or verdict.reason)


def _broken(check: Check) -> str:
    sign = "<" if HIGHER_IS_BETTER[check.metric] else ">"
    digits = DIGITS[check.metric]
    return f"{LABELS[check.metric]} {_number(check.value, digits)} {sign} {check.limit:.{digits}f}"


def format_table(scores: Sequence[VideoScore], verdicts: Mapping[str, VideoVerdict] | None = None) -> str:
    """The table; with ``verdicts`` (a gate ran) its last columns are the verdict, else whether it scored."""
    columns = metric_columns(scores)
    outcome = "result" if verdicts is None else "verdict"
    header = ("video", *(LABELS[metric] for metric in columns), "frames", "seconds", outcome, "detail")
    rows = [header, *(_row(score, columns, verdicts) for score in scores)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(_align(cell, width, i, len(header)) for i, (cell, width) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def metric_columns(scores: Sequence[VideoScore]) -> tuple[str, ...]:
    """The per-video metrics a table of ``scores`` shows, in the metric table's order (module docstring)."""
    compared = any(score.quality is not None and score.quality.get("match") is not None for score in scores)
    present = {metric for score in scores for metric in score.metrics}

    def shown(name: str) -> bool:
        metric = BY_NAME[name]
        if metric.opt_in:
            return name in present
        return compared or name in present if metric.needs_reference else True

    return tuple(name for name in VIDEO_METRICS if shown(name))


def _row(score: VideoScore, columns: Sequence[str], verdicts: Mapping[str, VideoVerdict] | None) -> tuple[str, ...]:
    metrics = score.metrics
    if verdicts is not None:
        verdict = verdicts.get(score.path)
        outcome, detail = ("-", "") if verdict is None else (verdict.outcome, verdict.detail)
    elif score.error is None:
        outcome, detail = "scored", ""
    else:
        outcome, detail = "error", f"{score.error.kind}: {score.error.message}"
    return (
        display_name(score.path),
        *(_number(metrics.get(metric), DIGITS[metric]) for metric in columns),
        str(score.frames or "-"),
        f"{sum(score.timings.values()):.1f}",
        outcome,
        _short(display_name(detail)),
    )


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 3] + "..."


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _align(cell: str, width: int, column: int, columns: int) -> str:
    return cell.ljust(width) if column in (0, columns - 2, columns - 1) else cell.rjust(width)


def custom_weights_notice(weights: Sequence[WeightsRecord]) -> str | None:
    """A line under every table scored with weights other than the released files: not paper numbers."""
    custom = [display_name(f"{w.name} {w.path} (SHA-256 {w.sha256[:12]}...)") for w in weights if w.custom]
    if not custom:
        return None
    quality = " (and LPIPS/FID with the files of docs/quality.md)" if any(w.name in _QUALITY for w in weights) else ""
    return (
        f"note: scored with custom weights ({'; '.join(custom)}): these numbers are not comparable with "
        f"published LSE-D/LSE-C, which use the released syncnet_v2.model and sfd_face.pth{quality}"
    )


def fast_options_notice(settings: Mapping[str, Any]) -> str | None:
    """A line under every table scored with a faster option (``precision``, ``detect_every``): it names each
    one, since a faster run's numbers are not the protocol's and must not pass for them."""
    from pytest_lipsync.settings import FAST_DEFAULTS

    used = [
        f"{key} = {settings[key]!r}" for key in FAST_DEFAULTS if key in settings and settings[key] != FAST_DEFAULTS[key]
    ]
    if not used:
        return None
    return (
        f"note: scored with faster options ({', '.join(used)}): these are not the protocol's numbers, not "
        "comparable with published LSE-D/LSE-C nor with runs made without these options"
    )


def run_notice(run: RunRecord) -> str | None:
    """Everything that makes a run's numbers other than the protocol's with the released weights, one line each."""
    lines = [line for line in (custom_weights_notice(run.weights), fast_options_notice(run.settings)) if line]
    return "\n".join(lines) or None
