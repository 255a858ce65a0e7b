"""``lipsync score --executor ray``: the numbers of a local run, streamed; a dead actor is replaced and its video
retried once, a hung one killed; set-up failures stop the command; a killed driver's run is resumed. On a local
Ray instance of two CPUs, shared by the module (its tests run on one xdist worker: ``xdist_group``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.results import RunRecord, VideoScore
from pytest_lipsync.scale.workers import Job, Progress
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.clips import ClipSpec
from tests import ray_standins
from tests.conftest import MakeClip, ScoreCommand
from tests.extras import import_extra
from tests.test_scale_stream import KEYS, _lines, _without_timings, project, score  # noqa: F401 (fixtures)

ray = import_extra("ray", "ray")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

ROOT = Path(__file__).resolve().parent.parent
# The pipeline protocol with the faulty marker detector: it crashes on one frame width and hangs on another.
FAULTY = ["--protocol", "pipeline", "--detector", "tests.ray_standins:faulty_marker_detector", "--min-track", "10"]
RAY = ["--executor", "ray", "--ray-cpus-per-actor", "1"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[ModuleType]:
    """A two-CPU Ray instance for this module (no dashboard, the smallest object store); its workers import
    ``tests.ray_standins`` from this checkout."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 1024 * 1024,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield ray
    ray.shutdown()


class _Sink:
    """Records what the executor streams, in order."""

    def __init__(self) -> None:
        self.run: RunRecord | None = None
        self.results: list[tuple[str, VideoScore, str | None]] = []

    def start(self, run: RunRecord) -> None:
        assert self.run is None and not self.results
        self.run = run

    def put(self, job: Job, result: VideoScore, sha256: str | None = None) -> None:
        self.results.append((job.entry.key, result, sha256))


def _jobs(folder: Path, names: list[str]) -> list[Job]:
    for name in names:
        (folder / name).write_bytes(name.encode())
    return [Job(n, VideoEntry(f"out/{name}", folder / name)) for n, name in enumerate(names, 1)]


def _score(jobs: list[Job], factory: Any, settings: Settings = Settings(device="cpu")) -> _Sink:
    from pytest_lipsync.scale.ray import RayOptions, score_on_ray

    sink = _Sink()
    run = score_on_ray(jobs, settings, Progress(len(jobs), quiet=True), sink, RayOptions(cpus_per_actor=1), factory)
    assert run == sink.run
    return sink


def _attempts(folder: Path, name: str) -> int:
    return len((folder / f"{name}.attempts").read_text().split())


def test_a_ray_run_gives_the_local_runs_json_and_jsonl(
    local_ray: ModuleType, project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "out" / "broken.mp4").write_bytes((project / "out" / "clip31.mp4").read_bytes()[:1500])
    assert score("out", "--json", "local.json", "-q") == 1
    assert (
        score("out", "--executor", "ray", "--ray-cpus-per-actor", "1", "--json", "ray.json", "--jsonl", "ray.jsonl")
        == 1
    )
    local, remote = (json.loads((project / name).read_text()) for name in ("local.json", "ray.json"))
    assert _without_timings(remote) == _without_timings(local)
    assert [video["path"] for video in local["videos"]] == ["out/broken.mp4", *KEYS]
    header, *lines = _lines(project / "ray.jsonl")
    assert header["collected"] == ["out/broken.mp4", *KEYS] and len(lines) == 4
    progress = capsys.readouterr().err.splitlines()
    assert {"(worker 1)", "(worker 2)"} <= {line[-10:] for line in progress}  # two actors of one core each


def test_every_video_is_streamed_once_with_its_hash(local_ray: ModuleType, tmp_path: Path) -> None:
    from pytest_lipsync.scale.stream import file_sha256

    jobs = _jobs(tmp_path, [f"v{n}.mp4" for n in range(6)])
    sink = _score(jobs, ray_standins.standin)
    assert sorted(key for key, _, _ in sink.results) == sorted(job.entry.key for job in jobs)
    assert all(result.ok and result.path == key for key, result, _ in sink.results)
    assert all(sha == file_sha256(tmp_path / Path(key).name) for key, _, sha in sink.results)


def test_a_dying_actor_is_replaced_and_its_video_retried_once(local_ray: ModuleType, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, ["a.mp4", "crash.mp4", "flaky.mp4", "b.mp4", "c.mp4"])
    results = {key: result for key, result, _ in _score(jobs, ray_standins.standin).results}
    crashed = results["out/crash.mp4"].error
    assert crashed is not None and crashed.kind == "worker_crashed" and "died, twice" in crashed.message
    assert _attempts(tmp_path, "crash.mp4") == 2  # retried once on a fresh actor, then recorded
    assert results["out/flaky.mp4"].ok and _attempts(tmp_path, "flaky.mp4") == 2  # the retry succeeded
    assert all(results[f"out/{name}"].ok for name in ("a.mp4", "b.mp4", "c.mp4"))


def test_an_exception_in_scoring_costs_its_video_only(local_ray: ModuleType, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, ["raise.mp4", "a.mp4"])
    results = {key: result for key, result, _ in _score(jobs, ray_standins.standin).results}
    raised = results["out/raise.mp4"].error
    assert (
        raised is not None
        and raised.kind == "worker_crashed"
        and "raised RuntimeError: a bug in scoring" in raised.message
    )
    assert _attempts(tmp_path, "raise.mp4") == 1 and results["out/a.mp4"].ok


def test_actors_that_cannot_load_the_models_stop_the_command(local_ray: ModuleType, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, ["a.mp4", "b.mp4"])
    with pytest.raises(LipsyncError, match="syncnet_v2.model: has the wrong size. Fetch it again"):
        _score(jobs, ray_standins.unloadable)
    with pytest.raises(LipsyncError, match="a Ray scoring actor died while loading the models"):
        _score(jobs, ray_standins.dies_loading)


def test_actor_shape_follows_the_resources() -> None:
    from pytest_lipsync.scale.ray import ActorShape, RayOptions, actor_shape

    assert actor_shape({"CPU": 16.0}, "auto", RayOptions(), 100) == ActorShape(4, 4.0, 0.0)
    assert actor_shape({"CPU": 2.0}, "auto", RayOptions(), 100) == ActorShape(1, 2.0, 0.0)
    assert actor_shape({"CPU": 2.0}, "cpu", RayOptions(cpus_per_actor=1), 100) == ActorShape(2, 1.0, 0.0)
    assert actor_shape({"CPU": 64.0, "GPU": 8.0}, "auto", RayOptions(), 100) == ActorShape(8, 4.0, 1.0)
    assert actor_shape({"CPU": 8.0, "GPU": 8.0}, "cuda", RayOptions(), 100) == ActorShape(8, 1.0, 1.0)
    assert actor_shape({"CPU": 64.0, "GPU": 8.0}, "cpu", RayOptions(), 100) == ActorShape(16, 4.0, 0.0)
    assert actor_shape({"CPU": 64.0, "GPU": 8.0}, "auto", RayOptions(max_actors=3), 2) == ActorShape(2, 4.0, 1.0)


def _faces(project: Path, make_clip: MakeClip, widths: dict[str, int]) -> None:
    """Clips of marker faces in ``faces/``, one per name, of the given square size."""
    (project / "faces").mkdir()
    for name, width in widths.items():
        clip = make_clip(f"ray_{width}.mp4", ClipSpec(seconds=1.2, width=width, height=width, marker=True, seed=width))
        (project / "faces" / name).write_bytes(clip.read_bytes())


def test_a_detector_plugin_that_crashes_in_native_code_costs_its_video_only(
    local_ray: ModuleType, project: Path, score: ScoreCommand, make_clip: MakeClip, capsys: pytest.CaptureFixture[str]
) -> None:
    _faces(project, make_clip, {"a.mp4": 112, "b.mp4": 128, "crash.mp4": ray_standins.CRASH_WIDTH})
    assert score("faces/a.mp4", "faces/b.mp4", *FAULTY, "--json", "local.json", "-q") == 0
    assert score("faces", *FAULTY, *RAY, "--json", "ray.json", "-q") == 1
    local, remote = (json.loads((project / name).read_text()) for name in ("local.json", "ray.json"))
    crashed = next(video for video in remote["videos"] if video["path"] == "faces/crash.mp4")
    assert (
        crashed["error"]["kind"] == "worker_crashed"
        and "the Ray actor scoring it died, twice" in crashed["error"]["message"]
    )
    # The actors that died are replaced; the other videos' numbers are a local run's, to the last digit.
    others = {**remote, "videos": [video for video in remote["videos"] if video is not crashed]}
    assert _without_timings({**others, "collected": None}) == _without_timings({**local, "collected": None})
    assert [video["path"] for video in local["videos"]] == ["faces/a.mp4", "faces/b.mp4"]
    assert all(video["error"] is None and video["metrics"]["lse_c"] > 0 for video in local["videos"])


def test_a_video_that_hangs_in_native_code_is_killed_at_twice_its_limit(
    local_ray: ModuleType, project: Path, score: ScoreCommand, make_clip: MakeClip, capsys: pytest.CaptureFixture[str]
) -> None:
    _faces(project, make_clip, {"hang.mp4": ray_standins.HANG_WIDTH, "crash.mp4": ray_standins.CRASH_WIDTH})
    started = time.monotonic()
    assert score("faces", *FAULTY, *RAY, "--timeout", "5", "--jsonl", "ray.jsonl", "-q") == 1
    assert time.monotonic() - started >= 10  # the hung actor was given twice its limit before it was killed
    _, *lines = _lines(project / "ray.jsonl")
    errors = {line["path"]: line["error"] for line in lines}
    assert (
        errors["faces/hang.mp4"]["kind"] == "timeout"
        and "did not respond and was killed" in errors["faces/hang.mp4"]["message"]
    )
    assert errors["faces/crash.mp4"]["kind"] == "worker_crashed"
    assert "2 videos in ray.jsonl (2 scored now, 0 kept from before): 0 ok, 2 failed" in capsys.readouterr().out


def test_a_killed_driver_loses_only_the_videos_in_flight_and_resume_scores_the_rest(
    local_ray: ModuleType, project: Path, score: ScoreCommand, syncnet_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(34, 37):  # six clips, scored one at a time by one actor of two cores
        (project / "out" / f"clip{n}.mp4").write_bytes((project / "out" / f"clip{31 + n % 3}.mp4").read_bytes())
    keys = sorted(f"out/{path.name}" for path in (project / "out").iterdir())
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "pytest_lipsync.cli.app", "score", "out", "--jsonl", "run.jsonl", "-q"]
    common = ["--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline"]
    one_actor = ["--executor", "ray", "--ray-address", address, "--ray-cpus-per-actor", "2"]
    driver = subprocess.Popen(
        [*command, *common, *one_actor, "--syncnet-weights", str(syncnet_weights)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = project / "run.jsonl"
        while driver.poll() is None and (not results.exists() or len(results.read_bytes().splitlines()) < 3):
            time.sleep(0.02)  # the header and two results are on disk
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait()
    assert driver.returncode == -signal.SIGKILL  # killed mid-run, not finished
    header, *before = _lines(project / "run.jsonl")
    assert header["collected"] == keys and 2 <= len(before) < len(keys)
    capsys.readouterr()
    assert score("out", "--jsonl", "run.jsonl", "--resume", *RAY) == 0
    captured = capsys.readouterr()
    kept = len(before)
    assert f"{len(keys)} videos in run.jsonl ({len(keys) - kept} scored now, {kept} kept from before)" in captured.out
    scored_now = sorted(line.split()[1] for line in captured.err.splitlines() if line.endswith(" s"))
    assert scored_now == sorted(set(keys) - {line["path"] for line in before})
    _, *after = _lines(project / "run.jsonl")
    assert after[:kept] == before and sorted(line["path"] for line in after) == keys
