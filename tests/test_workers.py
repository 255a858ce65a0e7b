"""``lipsync score --workers N``: the same results as one process, in the same order; a crash costs one video."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.errors import LipsyncError, WeightsError
from pytest_lipsync.progress import ProgressHook
from pytest_lipsync.quality.pairing import ReferenceMatch
from pytest_lipsync.results import RunRecord, VideoScore
from pytest_lipsync.scale.workers import Job, Progress, score_jobs
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip


class _Crashing:
    """A stand-in scorer whose process dies on any video named ``crash*`` (as a segfaulting decoder would)."""

    run = RunRecord("0", {}, (), "cpu")

    def score(
        self, path: str | Path, reference: ReferenceMatch | None = None, progress: ProgressHook | None = None
    ) -> VideoScore:
        if Path(path).name.startswith("crash"):
            os._exit(3)
        return VideoScore(str(path), {"lse_d": float(len(str(path)))})


def crashing_scorer(settings: Settings) -> _Crashing:
    return _Crashing()


def unloadable_scorer(settings: Settings) -> _Crashing:
    raise WeightsError("has the wrong size", path="syncnet_v2.model", hint="Fetch it again")


def _without_timings(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "videos": [{**video, "timings": {}} for video in document["videos"]]}


@pytest.mark.slow
def test_two_workers_give_the_single_process_results_in_order(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for seed in (21, 22, 23):
        (folder / f"clip{seed}.mp4").write_bytes(
            make_clip(f"workers_{seed}.mp4", ClipSpec(seconds=1.0, width=48, height=48, seed=seed)).read_bytes()
        )
    (folder / "broken.mp4").write_bytes((folder / "clip21.mp4").read_bytes()[:1500])
    common = ["score", str(folder), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline"]
    common += ["--syncnet-weights", str(syncnet_weights)]
    assert main([*common, "--json", str(tmp_path / "one.json"), "-q"]) == 1
    single = capsys.readouterr().out
    assert main([*common, "--json", str(tmp_path / "two.json"), "--workers", "2"]) == 1
    captured = capsys.readouterr()
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert _without_timings(one) == _without_timings(two)
    assert [Path(video["path"]).name for video in two["videos"]] == [
        "broken.mp4",
        "clip21.mp4",
        "clip22.mp4",
        "clip23.mp4",
    ]
    assert [line.split()[:4] for line in single.splitlines()] == [
        line.split()[:4] for line in captured.out.splitlines()
    ]
    progress = captured.err.splitlines()
    assert sum(line.endswith(" s") for line in progress) == 4 and {"(worker 1)", "(worker 2)"} <= {
        line[-10:] for line in progress
    }


def test_a_dying_worker_fails_its_video_only(tmp_path: Path) -> None:
    jobs = [
        Job(n, VideoEntry(f"out/{name}", tmp_path / name))
        for n, name in enumerate(["a.mp4", "crash.mp4", "b.mp4", "c.mp4"], 1)
    ]
    run, results = score_jobs(jobs, Settings(device="cpu"), 2, Progress(len(jobs), quiet=True), crashing_scorer)
    assert [result.path for result in results] == ["out/a.mp4", "out/crash.mp4", "out/b.mp4", "out/c.mp4"]  # keys
    crashed = results[1].error
    assert crashed is not None and crashed.kind == "worker_crashed"
    assert "crash.mp4: the worker process scoring it died (exit code 3)" in crashed.message
    assert all(result.ok for n, result in enumerate(results) if n != 1) and run.device == "cpu"


def test_a_worker_that_cannot_load_the_models_stops_the_command(tmp_path: Path) -> None:
    jobs = [Job(n, VideoEntry(f"{n}.mp4", tmp_path / f"{n}.mp4")) for n in (1, 2)]
    with pytest.raises(LipsyncError, match="syncnet_v2.model: has the wrong size. Fetch it again"):
        score_jobs(jobs, Settings(device="cpu"), 2, Progress(2, quiet=True), unloadable_scorer)
