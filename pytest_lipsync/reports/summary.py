"""The end-of-run text: every scored video, dataset means, where the numbers came from, what was written."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pytest_lipsync.display import plural
from pytest_lipsync.metrics import LABELS, MEAN_DIGITS, formatted
from pytest_lipsync.reports.outcome import RunSummary
from pytest_lipsync.reports.table import format_table, run_notice, video_verdicts
from pytest_lipsync.results import Tally

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig


def header_line(config: LipsyncConfig, *, cache_available: bool) -> str:
    """What the gate runs with, at the top of the log, for whoever reads a CI failure."""
    settings, options = config.settings, config.options
    cache = "off" if options.no_cache or not cache_available else "on"
    baseline = (
        f"{options.baseline} ({'update' if options.update_baseline else 'compare'})" if options.baseline else "none"
    )
    scoring = f"protocol={settings.protocol} fidelity={settings.fidelity} device={shown_device(settings.device)}"
    return f"lipsync: {scoring} baseline={baseline} cache={cache}"


def shown_device(device: str, modules: Mapping[str, object] | None = None) -> str:
    """``auto`` with what it resolves to when torch is already loaded; otherwise said to be resolved later.

    Importing torch takes seconds and a run may score nothing (everything cached, or no video selected), so
    the header never imports it: it asks only a torch that something else has loaded (``modules`` is
    ``sys.modules``).
    """
    if device != "auto":
        return device
    torch = (sys.modules if modules is None else modules).get("torch")
    if torch is None:
        return "auto (resolved when scoring starts)"
    return f"auto ({'cuda' if torch.cuda.is_available() else 'cpu'})"  # type: ignore[attr-defined]


def format_means(means: Mapping[str, float], scored: int) -> str:
    cells = "  ".join(formatted(m, means[m], MEAN_DIGITS) for m in LABELS if m in means)
    return f"mean over {plural(scored, 'scored video')}: {cells}" if cells else "no video could be scored"


def format_dataset(dataset: Mapping[str, float]) -> str | None:
    """The per-dataset metrics (FID), one number each over every video with ground truth; None without any."""
    cells = "  ".join(formatted(m, dataset[m]) for m in LABELS if m in dataset)
    return f"over the whole dataset: {cells}" if cells else None


def format_tally(tally: Tally) -> str:
    """Whether models ran: a fully cached run says so, since that is the point of the cache."""
    if tally.report is not None:
        return f"scores read from {tally.report} (no model loaded)"
    note = " (no model loaded)" if tally.scored == 0 and tally.replayed else ""
    return f"{tally.scored} scored, {tally.replayed} replayed from the cache{note}"


def summary_lines(summary: RunSummary, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The terminal section: the table, means, cache use, files written, and GitHub annotations there."""
    from pytest_lipsync.reports.github import error_annotations, in_github_actions

    if not summary.scores:  # a run of the dataset item alone (``-k fid``) has its number and no table
        dataset = format_dataset(summary.dataset)
        return [] if dataset is None else [dataset]
    scores, verdicts, outputs = summary.scores, summary.verdicts, summary.outputs
    lines = [
        format_table(scores, video_verdicts(scores, verdicts) if verdicts else None),
        "",
        format_means(summary.means(), summary.scored),
        *filter(None, [format_dataset(summary.dataset)]),
        format_tally(summary.tally),
    ]
    notice = None if summary.run is None else run_notice(summary.run)
    if notice is not None:
        lines.append(notice)
    if outputs is not None and outputs.json is not None:
        lines.append(f"lipsync: results written to {outputs.json}")
    if outputs is not None and outputs.html is not None:
        lines.append(f"lipsync: HTML report written to {outputs.html}")
    if outputs is not None and outputs.baseline is not None and outputs.baseline_path is not None:
        lines.append(outputs.baseline.describe(outputs.baseline_path))
    if in_github_actions(environ):
        lines += error_annotations(verdicts)
    return lines
