"""The end-of-run reports from plain data: a :class:`RunSummary` built by hand, no session and no pytest run.

Three videos: one passing, one failing two thresholds, one that could not be scored but left a partial LSE-D
(shown in its row, kept out of the means). Every string is written out as GitHub and the terminal get it.
"""

from __future__ import annotations

from pathlib import Path

from pytest_lipsync.gate.baseline import BaselineChange
from pytest_lipsync.gate.rules import Check, Verdict
from pytest_lipsync.reports.github import error_annotations, markdown_summary, publish_step_summary
from pytest_lipsync.reports.outcome import Outputs, RunSummary
from pytest_lipsync.reports.summary import summary_lines
from pytest_lipsync.results import RunRecord, ScoreError, Tally, VideoScore, WeightsRecord

RUN = RunRecord("0.1.0", {"protocol": "cropped"}, (WeightsRecord("syncnet", "w", "a" * 64, False),), "cpu")
SCORES = (
    VideoScore("out/a.mp4", {"lse_d": 7.0, "lse_c": 6.5, "offset": 0.0}, frames=50),
    VideoScore("out/b.mp4", {"lse_d": 9.25, "lse_c": 2.0, "offset": 3.0}, frames=50),
    VideoScore("out/c.mp4", {"lse_d": 20.0}, error=ScoreError("no_face", "no face in 40 of 40 frames")),
)
VERDICTS = {
    "out/a.mp4": Verdict(
        "out/a.mp4", "passed", (Check("lse_d", 7.0, 8.0, "lse_d_max"), Check("lse_c", 6.5, 3.0, "lse_c_min"))
    ),
    "out/b.mp4": Verdict(
        "out/b.mp4",
        "failed",
        (Check("lse_d", 9.25, 8.0, "lse_d_max"), Check("lse_c", 2.0, 3.0, "lse_c_min (pyproject.toml)")),
    ),
    "out/c.mp4": Verdict("out/c.mp4", "failed", reason="no_face: no face in 40 of 40 frames"),
}
MARKDOWN = """\
## pytest-lipsync: 3 videos, 2 failing checks

| video | LSE-D | LSE-C | offset | verdict |
|---|---:|---:|---:|---|
| <code>out&#47;a&#46;mp4</code> | 7.000 | 6.500 | 0.000 | passed |
| <code>out&#47;b&#46;mp4</code> | 9.250 | 2.000 | 3.000 | failed |
| <code>out&#47;c&#46;mp4</code> | 20.000 | - | - | no&#95;face |

**Mean:** LSE-D 8.125, LSE-C 4.250, offset 1.500
"""
ANNOTATIONS = [
    "::error file=out/b.mp4,title=lipsync gate::lse_d 9.250 vs limit 8.000 (lse_d_max); "
    "lse_c 2.000 vs limit 3.000 (lse_c_min (pyproject.toml))",
    "::error file=out/c.mp4,title=lipsync gate::no_face: no face in 40 of 40 frames",
]
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/talkers",
    "GITHUB_RUN_ID": "42",
}


def test_the_means_are_over_the_scored_videos_only() -> None:
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN)
    assert summary.scored == 2
    assert summary.means() == {"lse_d": (7.0 + 9.25) / 2, "lse_c": (6.5 + 2.0) / 2, "offset": (0.0 + 3.0) / 2}
    assert RunSummary().means() == {} and RunSummary().scored == 0


def test_the_step_summary_markdown_and_the_annotations() -> None:
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN)
    assert markdown_summary(summary.scores, summary.verdicts, summary.means()) == MARKDOWN
    assert error_annotations(summary.verdicts) == ANNOTATIONS


def test_the_step_summary_is_appended_with_the_html_reports_artifact(tmp_path: Path) -> None:
    target = tmp_path / "step_summary.md"
    target.write_text("## an earlier step\n")
    outputs = Outputs(html=tmp_path / "report")
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN, outputs)
    assert publish_step_summary(summary, {**GITHUB, "GITHUB_STEP_SUMMARY": str(target)}) == target
    link = (
        "**HTML report** (plots, annotated videos): the `lipsync-report` artifact of "
        "[this run's artifacts](https://github.com/acme/talkers/actions/runs/42#artifacts)."
    )
    assert target.read_text() == f"## an earlier step\n{MARKDOWN}\n{link}\n\n"


def test_no_step_summary_outside_github_actions_without_html_or_without_scores(tmp_path: Path) -> None:
    target = tmp_path / "step_summary.md"
    environ = {**GITHUB, "GITHUB_STEP_SUMMARY": str(target)}
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN)
    assert publish_step_summary(summary, {**environ, "GITHUB_ACTIONS": "false"}) is None
    assert not target.exists()
    assert publish_step_summary(RunSummary(), environ) is None
    assert not target.exists()
    assert publish_step_summary(summary, environ) == target  # no HTML report written: no artifact line
    assert target.read_text() == MARKDOWN + "\n"


def test_the_terminal_summary_lines_with_what_was_written_and_the_annotations() -> None:
    outputs = Outputs(
        json=Path("results.json"),
        baseline=BaselineChange(("out/c.mp4",), ("out/b.mp4",), (), 1),
        baseline_path=Path("baseline.json"),
        html=Path("report"),
    )
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=1, replayed=2), RUN, outputs)
    table, *rest = summary_lines(summary, GITHUB)
    assert [" ".join(row.split()) for row in table.splitlines()[2:]] == [
        "out/a.mp4 7.000 6.500 0 50 0.0 passed",
        "out/b.mp4 9.250 2.000 3 50 0.0 failed LSE-D 9.250 > 8.000, LSE-C 2.000 < 3.000",
        "out/c.mp4 20.000 - - - 0.0 error no_face: no face in 40 of 40 frames",
    ]
    assert rest == [
        "",
        "mean over 2 scored videos: LSE-D 8.125  LSE-C 4.250  offset 1.500",
        "1 scored, 2 replayed from the cache",
        "lipsync: results written to results.json",
        "lipsync: HTML report written to report",
        "lipsync: baseline baseline.json written: 1 added, 1 changed, 0 removed, 1 unchanged\n"
        "  added: out/c.mp4\n"
        "  changed: out/b.mp4",
        *ANNOTATIONS,
    ]


def test_the_terminal_summary_before_anything_was_written_and_outside_github_actions() -> None:
    summary = RunSummary(SCORES, VERDICTS, Tally(report="merged.json"), RUN)
    assert summary_lines(summary, {})[1:] == [
        "",
        "mean over 2 scored videos: LSE-D 8.125  LSE-C 4.250  offset 1.500",
        "scores read from merged.json (no model loaded)",
    ]
    assert summary_lines(RunSummary(), GITHUB) == []


FID = {"fid": 12.345678}


def test_the_dataset_fid_is_a_line_of_the_terminal_summary_and_of_the_step_summary() -> None:
    """FID is one number over the whole dataset: no video's row holds it, so both summaries say it on its own
    line, to the table's two digits (the means keep three or more)."""
    summary = RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN, dataset=FID)
    assert summary_lines(summary, {})[2:5] == [
        "mean over 2 scored videos: LSE-D 8.125  LSE-C 4.250  offset 1.500",
        "over the whole dataset: FID 12.35",
        "3 scored, 0 replayed from the cache",
    ]
    markdown = markdown_summary(summary.scores, summary.verdicts, summary.means(), dataset=summary.dataset)
    assert markdown == MARKDOWN + "\n**Over the whole dataset:** FID 12.35\n"
    assert "whole dataset" not in "\n".join(summary_lines(RunSummary(SCORES, VERDICTS, Tally(scored=3), RUN), {}))
    # the dataset item run alone (-k fid) scores no video: its number is the whole summary
    assert summary_lines(RunSummary(dataset=FID), {}) == ["over the whole dataset: FID 12.35"]


def test_means_keep_each_metrics_own_digits_where_it_has_more_than_three() -> None:
    scores = (VideoScore("out/a.mp4", {"lse_d": 7.0, "ssim": 0.91234, "lpips": 0.123456, "psnr": 31.0}),)
    line = summary_lines(RunSummary(scores, {}, Tally(scored=1), RUN), {})[2]
    assert line == "mean over 1 scored video: LSE-D 7.000  PSNR 31.000  SSIM 0.9123  LPIPS 0.1235"
