"""Names from the file system and from reports are data, never markup or workflow commands.

A newline in a video's file name must not start a line with ``::`` in a GitHub Actions log (the runner
would execute it as a workflow command), ``|``, backticks or ``<img>`` must not break out of the job
summary's table, and bidirectional overrides must not reorder what a reviewer reads. Pure functions over
hand-made scores and verdicts, then one pytest run over a file with such a name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_lipsync.display import display_name
from pytest_lipsync.gate.baseline import BaselineChange
from pytest_lipsync.gate.rules import Check, Verdict, format_verdict
from pytest_lipsync.reports.github import error_annotations, markdown_summary
from pytest_lipsync.reports.table import custom_weights_notice, format_table
from pytest_lipsync.results import ScoreError, VideoScore, WeightsRecord
from tests.conftest import PytesterProject
from tests.test_plugin import clips, project, run, shared_cache  # noqa: F401 -- the pytester project's fixtures

pytest_plugins = ["pytester"]

INJECTED = "videos/a\n::warning title=pwned::hi.mp4"
REVERSED = "videos/evil\u202egnp.mp4"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (INJECTED, "videos/a\\n::warning title=pwned::hi.mp4"),
        ("videos/a\r\n::error::x", "videos/a\\r\\n::error::x"),
        (REVERSED, "videos/evil\\u202egnp.mp4"),
        ("a\u2066b\u2069\u2028c\x1b[31m\x7f\t.mp4", "a\\u2066b\\u2069\\u2028c\\x1b[31m\\x7f\\t.mp4"),
        ("::warning::x.mp4", "\\x3a:warning::x.mp4"),
        ("  ::error::x.mp4", "  \\x3a:error::x.mp4"),
        ("##[error]x.mp4", "\\x23#[error]x.mp4"),
        ("name\udcff.mp4", "name\\xff.mp4"),  # an undecodable byte (surrogateescape) cannot even be printed
        ("videos/ünï cödé/a::b #1.mp4", "videos/ünï cödé/a::b #1.mp4"),
    ],
)
def test_display_name_escapes_controls_bidi_and_a_leading_command(name: str, shown: str) -> None:
    assert display_name(name) == shown


def _starts_a_command(line: str) -> bool:
    return line.lstrip().startswith(("::", "##"))


def test_terminal_table_failure_text_and_baseline_lines_stay_one_line_each() -> None:
    error = ScoreError("unreadable", f"{INJECTED}: cannot be opened as a video")
    scores = [VideoScore(path=INJECTED, error=error), VideoScore(path=REVERSED, metrics={"lse_d": 7.0, "lse_c": 6.0})]
    table = format_table(scores)
    assert len(table.splitlines()) == 4 and not any(_starts_a_command(line) for line in table.splitlines())
    assert "videos/a\\n::warning title=pwned::hi.mp4" in table and "videos/evil\\u202egnp.mp4" in table

    verdict = Verdict(
        INJECTED, "failed", (Check("lse_d", 9.0, 8.0, "lse_d_max"),), f"{INJECTED} is not in the baseline"
    )
    text = format_verdict(verdict)
    assert (
        text.splitlines()[0]
        == "videos/a\\n::warning title=pwned::hi.mp4: videos/a\\n::warning title=pwned::hi.mp4 is not in the baseline"
    )
    assert len(text.splitlines()) == 3

    described = BaselineChange((INJECTED,), (), (), 0).describe(Path("base.json"))
    assert described.splitlines()[1] == "  added: videos/a\\n::warning title=pwned::hi.mp4"

    weights = WeightsRecord("syncnet", "/w/\n::warning::w.model", "ab" * 32, True)
    notice = custom_weights_notice([weights])
    assert notice is not None and "\n" not in notice and "/w/\\n::warning::w.model" in notice


def test_lipsync_score_progress_lines_stay_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_lipsync.scale.workers import Job, Progress
    from pytest_lipsync.scoring.entry import VideoEntry

    progress, job = Progress(1), Job(1, VideoEntry(INJECTED, Path(INJECTED)))
    progress.started(job)
    progress.finished(job, VideoScore(path=INJECTED), 1.0)
    assert capsys.readouterr().err.splitlines() == [
        "[1/1] videos/a\\n::warning title=pwned::hi.mp4 ...",
        "[1/1] videos/a\\n::warning title=pwned::hi.mp4 ok in 1.0 s",
    ]


def test_annotations_escape_the_name_and_the_message() -> None:
    verdict = Verdict(INJECTED, "failed", reason=f"unreadable: {REVERSED}\n::error::x")
    (line,) = error_annotations({INJECTED: verdict})
    assert line == (
        "::error file=videos/a\\n%3A%3Awarning title=pwned%3A%3Ahi.mp4,title=lipsync gate::"
        "unreadable: videos/evil\\u202egnp.mp4\\n::error::x"
    )


def test_job_summary_shows_names_as_literal_text_in_their_cell() -> None:
    name = "out/a|b`c<img src=x>*[y](z)_\u202e.mp4"
    score = VideoScore(path=name, metrics={"lse_d": 7.0}, error=ScoreError("no_face`|<b>", "x"))
    (row,) = [line for line in markdown_summary([score], {}, {}).splitlines() if line.startswith("| <code>")]
    assert row == (
        "| <code>out&#47;a&#124;b&#96;c&#60;img src&#61;x&#62;&#42;&#91;y&#93;&#40;z&#41;&#95;&#92;u202e&#46;mp4"
        "</code> "
        "| 7.000 | no&#95;face&#96;&#124;&#60;b&#62; |"
    )


def test_a_pytest_run_over_an_injecting_file_name_prints_no_workflow_command(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project("[tool.lipsync.thresholds]\nlse_d_max = 1.0\n", broken=False)
    source = pytester.path / "videos" / "good.mp4"
    shutil.copyfile(source, pytester.path / INJECTED)
    shutil.copyfile(source, pytester.path / REVERSED)
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run(pytester, shared_cache, "-rA")
    result.assert_outcomes(failed=4)
    commands = [line for line in result.stdout.lines if _starts_a_command(line)]
    assert len(commands) == 4 and all(line.startswith("::error file=") for line in commands)
    result.stdout.fnmatch_lines(["videos/a\\n::warning title=pwned::hi.mp4::lipsync FAILED*"])
    result.stdout.fnmatch_lines(["videos/evil\\u202egnp.mp4::lipsync FAILED*"])
    assert "\u202e" not in result.stdout.str()
    text = summary.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| <code>")]
    assert len(rows) == 4 and "\u202e" not in text  # one row per video: no name split or ended its row


def test_usage_errors_and_warnings_of_the_command_stay_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_lipsync.cli.app import main

    for name in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert main(["gate", "missing\n::error::z.json"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("lipsync: error: missing\\n::error::z.json: cannot be read")
    monkeypatch.setenv("LIPSYNC_X\n::warning::y", "1")
    assert main(["score", "x.mp4", "--timeout", "0"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "lipsync: warning: LIPSYNC_X\\n::warning::y is not a pytest-lipsync setting and is ignored (a setting's "
        "variable is LIPSYNC_ and its [tool.lipsync] key in capitals, e.g. LIPSYNC_LSE_D_MAX)"
    )


def test_pytest_usage_errors_stay_one_line(project: PytesterProject, pytester: pytest.Pytester) -> None:
    project(broken=False)
    (pytester.path / "base\n::warning::x.json").write_text("{}")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lipsync-baseline=base\n::warning::x.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-lipsync: */base\\n::warning::x.json: is not a readable baseline*"])
    assert not any(_starts_a_command(line) for line in result.stderr.lines)


def test_the_html_report_shows_names_as_display_name_does(tmp_path: Path) -> None:
    from pytest_lipsync.reports.html import write_report
    from pytest_lipsync.results import Report, RunRecord

    error = ScoreError("unreadable", f"{REVERSED}: cannot be opened as a video")
    run = RunRecord("0", {"protocol": "cropped", "fidelity": "clean"}, (), "cpu")
    page = write_report(Report(run, (VideoScore(path=REVERSED, error=error),)), tmp_path / "html").read_text()
    assert "\u202e" not in page
    assert (
        "<h2>videos/evil\\u202egnp.mp4</h2>" in page
        and "unreadable: videos/evil\\u202egnp.mp4: cannot be opened" in page
    )
