"""GitHub Actions output: a Markdown table for the job summary page and ``::error`` annotations.

The step summary has a 1 MiB limit per step; the table is cut well below it (a note says how many rows
were left out and that the JSON report has them). Annotations are capped at 10: GitHub shows only a few
per step anyway, and the summary has the rest.

Names and messages are data: in the summary every ASCII punctuation character is written as an HTML
entity (:func:`_markdown`), so that ``|``, backticks, ``<img>``, ``[link](...)`` or ``*`` in a file name
show as themselves instead of ending a table cell or becoming markup; in an annotation the name and the
message go through ``display_name`` (no newline can start a second workflow command) and then the
workflow-command escaping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_lipsync.display import display_name
from pytest_lipsync.gate.rules import Verdict
from pytest_lipsync.metrics import LABELS, MEAN_DIGITS, formatted
from pytest_lipsync.reports.outcome import RunSummary
from pytest_lipsync.reports.table import run_notice
from pytest_lipsync.results import VideoScore

SUMMARY_LIMIT = 256 * 1024
MAX_ANNOTATIONS = 10
# The artifact the example workflows (templates/lipsync.yml) upload the --lipsync-html directory as.
HTML_ARTIFACT = "lipsync-report"


def in_github_actions(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def markdown_summary(
    scores: Sequence[VideoScore],
    verdicts: Mapping[str, Verdict],
    means: Mapping[str, float],
    limit: int = SUMMARY_LIMIT,
    notice: str | None = None,
    dataset: Mapping[str, float] | None = None,
) -> str:
    """The job-summary section: one row per video with its verdict, then the dataset means, the per-dataset
    metrics (``dataset``: FID) and ``notice``."""
    columns = [m for m in LABELS if any(m in s.metrics for s in scores)]
    failed = sum(1 for v in verdicts.values() if v.outcome == "failed")
    head = [f"## pytest-lipsync: {len(scores)} videos, {failed} failing checks", ""]
    head += ["| video | " + " | ".join(LABELS[m] for m in columns) + " | verdict |"]
    head += ["|---|" + "---:|" * len(columns) + "---|"]
    tail = ["", "**Mean:** " + ", ".join(formatted(m, means[m], MEAN_DIGITS) for m in columns if m in means), ""]
    whole = [formatted(m, dataset[m]) for m in LABELS if dataset and m in dataset]
    tail += ["**Over the whole dataset:** " + ", ".join(whole), ""] if whole else []
    tail += [*(f"_{_markdown(line)}_" for line in notice.splitlines()), ""] if notice else []
    rows = [_row(score, columns, verdicts) for score in scores]
    budget = limit - sum(len(line) + 1 for line in head + tail) - 200
    kept = []
    for row in rows:
        budget -= len(row) + 1
        if budget < 0:
            break
        kept.append(row)
    if len(kept) < len(rows):
        kept.append(
            f"\n_{len(rows) - len(kept)} more videos left out to stay under GitHub's size limit: see the JSON report._"
        )
    return "\n".join(head + kept + tail)


def append_step_summary(text: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (other steps' sections stay); ``None`` when it is not set."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as sink:
        sink.write(text + "\n")
    return Path(target)


def publish_step_summary(summary: RunSummary, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Under GitHub Actions, append the run's table to the job summary, and where to find the HTML report
    when the run wrote one."""
    if not in_github_actions(environ) or not summary.scores:
        return None
    notice = None if summary.run is None else run_notice(summary.run)
    text = markdown_summary(summary.scores, summary.verdicts, summary.means(), notice=notice, dataset=summary.dataset)
    wrote_html = summary.outputs is not None and summary.outputs.html is not None
    link = artifact_line(environ) if wrote_html else None
    return append_step_summary(text if link is None else f"{text}\n{link}\n", environ)


def artifact_line(environ: Mapping[str, str]) -> str | None:
    """A link to the run's artifacts, where the workflow uploads the HTML report as :data:`HTML_ARTIFACT`
    (job summaries cannot link into an artifact's files); None outside a GitHub Actions run."""
    parts = [environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    server, repository, run = parts
    return (
        f"**HTML report** (plots, annotated videos): the `{HTML_ARTIFACT}` artifact of "
        f"[this run's artifacts]({server}/{repository}/actions/runs/{run}#artifacts)."
    )


def error_annotations(verdicts: Mapping[str, Verdict]) -> list[str]:
    """``::error file=<video key>`` workflow commands for the first failing videos (by key); keys are
    rootdir-relative, which is what GitHub resolves against the checkout."""
    failing = [verdicts[key] for key in sorted(verdicts) if verdicts[key].outcome == "failed"]
    lines = []
    for verdict in failing[:MAX_ANNOTATIONS]:
        message = _escape(display_name(_describe(verdict)))
        lines.append(f"::error file={_escape(display_name(verdict.key), property=True)},title=lipsync gate::{message}")
    return lines


def _describe(verdict: Verdict) -> str:
    checks = [f"{c.metric} {c.value:.3f} vs limit {c.limit:.3f} ({c.rule})" for c in verdict.failed_checks]
    return "; ".join(checks) if checks else verdict.reason


def _row(score: VideoScore, columns: Sequence[str], verdicts: Mapping[str, Verdict]) -> str:
    cells = [_number(score.metrics.get(m)) for m in columns]
    outcomes = [v for key, v in verdicts.items() if v.key == score.path]
    if score.error is not None:
        status = _markdown(score.error.kind)
    else:
        status = "failed" if any(v.outcome == "failed" for v in outcomes) else "passed" if outcomes else "scored"
    if any(v.outcome == "xfailed" for v in outcomes):
        status += " (allowed)"
    return f"| <code>{_markdown(score.path)}</code> | " + " | ".join(cells) + f" | {status} |"


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _markdown(text: str) -> str:
    """``text`` as literal characters of GitHub Markdown, inside a table cell too: shown as ``display_name``
    shows it, with every ASCII character but letters, digits and the space written as an HTML entity, which
    Markdown decodes after it has parsed (so ``&#124;`` ends no cell and ``&#60;img&#62;`` is no tag)."""
    shown = display_name(text)
    return "".join(char if char.isalnum() or char == " " or not char.isascii() else f"&#{ord(char)};" for char in shown)


def _escape(text: str, *, property: bool = False) -> str:
    """Workflow-command escaping: ``%``, CR and LF everywhere, and ``:`` and ``,`` inside a property."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text
