"""The terminal table says per video what happened: scored or not (``lipsync score``), and with a gate the
verdict (passed, failed, allowed, error) and why, on one line whatever the message's length."""

from __future__ import annotations

import pytest

from pytest_lipsync.display import plural
from pytest_lipsync.gate.rules import Check, Verdict
from pytest_lipsync.reports.table import MESSAGE_WIDTH, format_table, video_verdicts
from pytest_lipsync.results import ScoreError, VideoScore

pytest_plugins = ["pytester"]

GOOD = VideoScore(path="good.mp4", metrics={"lse_d": 7.0, "lse_c": 6.5, "offset": 0.0}, frames=25)
BAD = VideoScore(path="bad.mp4", metrics={"lse_d": 9.0, "lse_c": 5.0, "offset": 1.0}, frames=25)
LONG = "x" * 200
BROKEN = VideoScore(path="broken.mp4", error=ScoreError("unreadable", f"cannot be opened as a video: {LONG}"))
SILENT = VideoScore(path="silent.mp4", error=ScoreError("no_audio", "has no audio stream"))


def _rows(table: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in table.splitlines()[2:]}


def test_score_table_says_scored_or_error_with_its_kind() -> None:
    table = format_table([GOOD, BROKEN])
    header = table.splitlines()[0].split()
    assert header[-2:] == ["result", "detail"] and "status" not in header
    rows = _rows(table)
    assert rows["good.mp4"][-1] == "scored"
    assert rows["broken.mp4"][6:8] == ["error", "unreadable:"]


def test_long_messages_are_cut_to_one_short_cell() -> None:
    line = next(line for line in format_table([GOOD, BROKEN]).splitlines() if line.startswith("broken.mp4"))
    detail = line[line.index("unreadable:") :]
    assert len(detail) == MESSAGE_WIDTH and detail.endswith("...")


def test_gate_table_shows_each_videos_verdict_not_ok_under_failed_checks() -> None:
    verdicts = {
        "good.mp4": Verdict("good.mp4", "passed", (Check("lse_d", 7.0, 8.0, "lse_d_max"),)),
        "bad.mp4": Verdict(
            "bad.mp4",
            "failed",
            (Check("lse_d", 9.0, 8.0, "lse_d_max"), Check("lse_c", 5.0, 6.0, "lse_c_min")),
            "2 of 2 checks failed",
        ),
        "broken.mp4": Verdict("broken.mp4", "failed", reason="unreadable: cannot be opened"),
        "silent.mp4": Verdict("silent.mp4", "xfailed", reason="no_audio: has no audio stream (allowed)"),
    }
    table = format_table([GOOD, BAD, BROKEN, SILENT], video_verdicts([GOOD, BAD, BROKEN, SILENT], verdicts))
    assert table.splitlines()[0].split()[-2:] == ["verdict", "detail"]
    rows = _rows(table)
    assert rows["good.mp4"][-1] == "passed"
    bad = next(line for line in table.splitlines() if line.startswith("bad.mp4"))
    assert "failed LSE-D 9.000 > 8.000, LSE-C 5.000 < 6.000" in " ".join(bad.split())
    assert rows["broken.mp4"][6:8] == ["error", "unreadable:"]
    assert rows["silent.mp4"][6:8] == ["allowed", "no_audio:"]
    assert "ok" not in {row[-1] for row in rows.values()}


def test_a_failed_quality_item_fails_the_video_and_an_unjudged_video_shows_a_dash() -> None:
    verdicts = {
        "good.mp4": Verdict("good.mp4", "passed"),
        "good.mp4::quality": Verdict("good.mp4", "failed", (Check("ssim", 0.5, 0.8, "ssim_min"),), "1 of 1 check"),
    }
    table = format_table([GOOD, BAD], video_verdicts([GOOD, BAD], verdicts))
    rows = _rows(table)
    good = next(line for line in table.splitlines() if line.startswith("good.mp4"))
    assert "failed SSIM 0.5000 < 0.8000" in " ".join(good.split())
    assert rows["bad.mp4"][-1] == "-"


def test_plural() -> None:
    assert plural(1, "video") == "1 video"
    assert plural(2, "video") == "2 videos"
    assert plural(0, "check") == "0 checks"


class _Torch:
    def __init__(self, cuda: bool) -> None:
        self.cuda = self
        self._cuda = cuda

    def is_available(self) -> bool:
        return self._cuda


def test_the_header_shows_the_resolved_device_only_from_a_torch_already_loaded() -> None:
    from pytest_lipsync.reports.summary import shown_device

    assert shown_device("cuda:1", {}) == "cuda:1"
    assert shown_device("auto", {}) == "auto (resolved when scoring starts)"
    assert shown_device("auto", {"torch": _Torch(cuda=False)}) == "auto (cpu)"
    assert shown_device("auto", {"torch": _Torch(cuda=True)}) == "auto (cuda)"


def test_an_inert_header_imports_no_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "out"\nallow_no_videos = true\n')
    (pytester.path / "out").mkdir()
    pytester.makeconftest(
        "import sys\ndef pytest_sessionfinish(session):\n    print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["lipsync: * device=auto (resolved when scoring starts) *", "*torch loaded: False*"])
