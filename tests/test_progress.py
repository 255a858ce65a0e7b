"""Progress while a video is scored: the stages report their counts to whatever a front-end passes in
(nothing when it passes nothing), a CI log gets a line every few seconds at most (a fake clock here: no
test waits), a terminal gets tqdm bars, and the pytest gate writes through its terminal reporter."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pytest_lipsync.progress import ProgressEvent
from pytest_lipsync.reports.progress import ThrottledLines, TqdmBars, progress_display
from pytest_lipsync.results import RunRecord, VideoScore
from pytest_lipsync.scale.workers import Job, Progress, score_jobs
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip, Scorers


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_throttled_and_say_every_count_so_far() -> None:
    clock, lines = FakeClock(), list[str]()
    show = ThrottledLines(lines.append, interval=5.0, clock=clock)
    for second in range(12):
        clock.now = 100.0 + second
        show(ProgressEvent("a.mp4", "frames", 10 * (second + 1), 250))
        show(ProgressEvent("a.mp4", "faces", 10 * (second + 1), 250))
    assert lines == [
        "lipsync: a.mp4: frames decoded 60/250, frames searched for faces 50/250",
        "lipsync: a.mp4: frames decoded 110/250, frames searched for faces 100/250",
    ]


def test_a_video_done_within_the_interval_writes_no_line_and_the_next_starts_afresh() -> None:
    clock, lines = FakeClock(), list[str]()
    show = ThrottledLines(lines.append, interval=5.0, clock=clock)
    show(ProgressEvent("quick.mp4", "windows", 20))
    clock.now += 4.9
    show(ProgressEvent("quick.mp4", "windows", 40))
    show.close()
    show(ProgressEvent("slow.mp4", "windows", 1))
    clock.now += 5.0
    show(ProgressEvent("slow.mp4", "windows", 2))
    assert lines == ["lipsync: slow.mp4: windows 2"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_bars_a_log_gets_lines_quiet_gets_nothing() -> None:
    assert isinstance(progress_display(_Tty()), TqdmBars)
    assert isinstance(progress_display(io.StringIO()), ThrottledLines)
    assert progress_display(_Tty(), quiet=True) is None


def test_bars_follow_the_counts_and_are_gone_when_the_video_is_done() -> None:
    stream = _Tty()
    bars = TqdmBars(stream)
    bars(ProgressEvent("a.mp4", "frames", 8, 16))
    bars(ProgressEvent("a.mp4", "frames", 16, 16))
    bars(ProgressEvent("a.mp4", "windows", 11))
    assert [(bar.n, bar.total) for bar in bars._bars.values()] == [(16, 16), (11, None)]
    bars.close()
    assert bars._bars == {} and "frames decoded" in stream.getvalue()


class _Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.closed = 0

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed += 1


def test_cropped_scoring_reports_its_windows(make_clip: MakeClip, scorers: Scorers) -> None:
    clip = make_clip("progress_cropped.mp4", ClipSpec(seconds=1.0, seed=5))
    seen = _Recorder()
    score = scorers("clean", "cropped").score(clip, progress=seen)
    assert score.ok
    windows = [event.done for event in seen.events if event.stage == "windows"]
    assert windows and windows == sorted(windows) and windows[-1] == score.frames - 5
    assert {event.video for event in seen.events} == {str(clip)}


def test_pipeline_scoring_reports_frames_faces_and_windows(make_clip: MakeClip, syncnet_weights: Path) -> None:
    from pytest_lipsync.scoring.scorer import Scorer

    clip = make_clip("cli_one_face.mp4", ClipSpec(seconds=4.4, width=160, height=160, marker=True, seed=21))
    settings = Settings(
        protocol="pipeline",
        fidelity="clean",
        device="cpu",
        syncnet_weights=str(syncnet_weights),
        detector="pytest_lipsync.synthetic.faces:marker_detector",
        offline=True,
    )
    seen = _Recorder()
    score = Scorer(settings).score(clip, progress=seen)
    assert score.ok
    last = {event.stage: event for event in seen.events}
    assert set(last) == {"frames", "faces", "windows"}
    assert last["frames"].done == last["faces"].done == score.frames == 110
    assert last["frames"].total == 110  # from the header: a bar knows its end


class _StandIn:
    run = RunRecord("0", {}, (), "cpu")

    def score(self, path: str | Path, reference: object = None, progress: object = None) -> VideoScore:
        if callable(progress):
            progress(ProgressEvent(str(path), "windows", 3))
        return VideoScore(str(path), {"lse_d": 7.0})


def test_lipsync_score_hands_the_display_to_each_video_and_closes_it(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [Job(n, VideoEntry(f"v{n}.mp4", Path(f"v{n}.mp4"))) for n in (1, 2)]
    seen = _Recorder()
    _, scores = score_jobs(jobs, Settings(), 1, Progress(2, display=seen), factory=lambda settings: _StandIn())
    assert [event.video for event in seen.events] == ["v1.mp4", "v2.mp4"] and seen.closed == 2
    assert [score.path for score in scores] == ["v1.mp4", "v2.mp4"]


pytest_plugins = ["pytester"]


@pytest.mark.parametrize(("flags", "shown"), [(["-v"], True), ([], False), (["-v", "-q"], False)])
def test_the_pytest_gate_writes_progress_through_its_reporter_with_v(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    shown: bool,
) -> None:
    """Not a terminal here: lines only with ``-v``; written by pytest's reporter, so they start a line."""
    from pytest_lipsync.plugin.hooks import gate_of

    monkeypatch.setattr("pytest_lipsync.reports.progress.INTERVAL_SECONDS", 0.0)
    (pytester.path / "out").mkdir()
    config = pytester.parseconfigure("--lipsync-videos", "out", "--lipsync-allow-no-videos", *flags)
    progress = gate_of(config).progress
    assert progress is not None
    capsys.readouterr()
    progress(ProgressEvent("out/a.mp4", "frames", 8, 16))
    out = capsys.readouterr().out
    assert ("\nlipsync: out/a.mp4: frames decoded 8/16\n" in "\n" + out) == shown
