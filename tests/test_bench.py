"""``lipsync bench``: its clips, its variants, and the arithmetic of a tiny real run (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_lipsync.bench.clips import generated_clip, given_clips, parse_resolution
from pytest_lipsync.bench.driver import compare_with_baseline, memory_growth
from pytest_lipsync.bench.plan import BASELINE, Variant, parse_variant, variants
from pytest_lipsync.cli.app import main
from pytest_lipsync.errors import ConfigError

pytestmark = pytest.mark.slow  # the benchmark harness end to end, in child processes


@pytest.mark.parametrize("faces", [1, 2])
def test_generated_clip_has_the_frames_size_and_faces_it_says(tmp_path: Path, faces: int) -> None:
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.synthetic.faces import marker_boxes

    clip = generated_clip(tmp_path, "160x128", 0.4, faces)
    frames = np.concatenate(list(open_video(clip.path).frames(8)))
    assert (clip.width, clip.height, clip.frames, clip.faces) == (160, 128, 10, faces)
    assert frames.shape == (10, 128, 160, 3)
    assert [len(marker_boxes(frame)) for frame in frames] == [faces] * 10
    assert generated_clip(tmp_path, "160x128", 0.4, faces).path.stat().st_mtime == clip.path.stat().st_mtime


def test_given_clips_are_taken_as_they_are(tmp_path: Path) -> None:
    made = generated_clip(tmp_path / "real", "160x128", 0.4, 2)
    (clip,) = given_clips(tmp_path / "real")
    assert (clip.path, clip.name, clip.width, clip.height, clip.faces, clip.generated) == (
        made.path,
        made.path.stem,
        160,
        128,
        None,
        False,
    )
    assert clip.frames == 10
    with pytest.raises(ConfigError, match="--clips is not a directory"):
        given_clips(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="--clips holds no video files"):
        given_clips(tmp_path / "empty")


@pytest.mark.parametrize(("text", "named"), [("96x96", "96x96"), ("129x144", "129x144"), ("4k", "4k")])
def test_bad_resolutions_are_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_resolution(text)


def test_variant_values_are_json_or_text_and_validated_as_settings() -> None:
    variant = parse_variant("fidelity=clean, batch_size=16")
    assert variant == Variant("fidelity=clean, batch_size=16", (("fidelity", "clean"), ("batch_size", 16)))
    assert [v.name for v in variants(["fidelity=clean", "fidelity=clean", "batch_size=8"])] == [
        BASELINE,
        "fidelity=clean",
        "batch_size=8",
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("no_such_setting=1", "'no_such_setting' is not a setting"),
        ("fidelity=fast", "setting 'fidelity' is 'fast'"),
        ("batch_size=0", "setting 'batch_size' is 0"),
        ("fidelity", "'fidelity' is not key=value"),
        ("protocol=cropped", "'protocol' is fixed"),
        (",", "changes nothing"),
        ("detect_every=50", "'detect_every' is 50, more than num_failed_det = 25"),
    ],
)
def test_variant_errors_name_the_bad_key_or_value(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_variant(text)


def test_a_bad_device_is_refused_before_any_clip_is_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--device", "gpu", "--workdir", str(tmp_path), "-q"]) != 0
    assert "setting 'device' is 'gpu'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_given_clips_keep_the_default_min_track_and_generated_ones_fit_it_to_their_length(tmp_path: Path) -> None:
    from pytest_lipsync.bench.driver import BenchPlan, score_jobs
    from pytest_lipsync.bench.models import BenchWeights

    generated = generated_clip(tmp_path, "128x128", 0.4, 1)
    (given,) = given_clips(generated.path.parent)
    plan = BenchPlan((generated, given), ("cropped",), (Variant(BASELINE),), BenchWeights("s", "f", True), "cpu",
                     False, None, 0, tmp_path)  # fmt: skip
    assert [job.min_track for _, job in score_jobs(plan)] == [8, 100]


def test_bench_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--variant" in out and "--preset" in out and "stand-in weights: timings only" in out


def _run(
    lse_seconds: float, metrics: dict[str, float], variant: str = BASELINE, seconds: float = 1.0, peak: float = 100
) -> dict[str, Any]:
    clip = {"name": f"c{seconds}", "width": 8, "height": 8, "faces": 1, "seconds": seconds, "generated": True}
    return {"clip": clip, "protocol": "pipeline", "variant": variant, "lse_seconds": lse_seconds,
            "metrics": dict(metrics), "peak_rss_mib": peak}  # fmt: skip


def test_variants_of_pipeline_only_settings_are_not_run_with_the_cropped_protocol() -> None:
    from pytest_lipsync.bench.plan import applies

    texts = ("detect_every=2", "detect_every=2,batch_size=8", "fidelity=clean")
    detect_every, mixed, fidelity = (parse_variant(text) for text in texts)
    assert [applies(v, "pipeline") for v in (Variant(BASELINE), detect_every, mixed, fidelity)] == [True] * 4
    assert [applies(v, "cropped") for v in (Variant(BASELINE), detect_every, mixed, fidelity)] == [
        True,
        False,
        True,
        True,
    ]
    assert not applies(parse_variant("min_track=10,crop_scale=0.5"), "cropped")


def test_variants_are_compared_with_the_baseline_and_standin_scores_dropped() -> None:
    runs = [
        _run(4.0, {"lse_d": 8.0, "lse_c": 3.0, "offset": 1.0}),
        _run(2.0, {"lse_d": 8.5, "lse_c": 2.0, "offset": 1.0}, "x=1"),
    ]
    compare_with_baseline(runs, standin=True)
    assert "vs_baseline" not in runs[0]
    assert runs[1]["vs_baseline"] == {"speedup": 2.0, "lse_d_change": 0.5, "lse_c_change": -1.0, "offset_change": 0.0}
    assert all("metrics" not in run for run in runs)


def test_memory_growth_compares_the_longest_clip_with_the_shortest() -> None:
    runs = [_run(1, {}, seconds=60, peak=300), _run(1, {}, seconds=10, peak=250), _run(1, {}, seconds=30, peak=999)]
    (row,) = memory_growth(runs)
    assert (row["short_seconds"], row["long_seconds"], row["ratio"]) == (10, 60, 300 / 250)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """``lipsync bench`` for real on a 0.4 s 128x128 clip, stand-in weights, pipeline protocol (one child process)."""
    directory = tmp_path_factory.mktemp("bench")
    args = ["bench", "--resolutions", "128x128", "--seconds", "0.4", "--faces", "1", "--single-frames", "0",
            "--protocols", "pipeline", "--standin", "--workdir", str(directory),
            "--json", str(directory / "bench.json"), "--markdown", str(directory / "bench.md"), "-q"]  # fmt: skip
    assert main(args) == 0
    return json.loads((directory / "bench.json").read_text()), (directory / "bench.md").read_text()


PIPELINE_STAGES = {"decode", "scene cuts", "detection", "tracking/crop", "SyncNet", "distances", "quality", "other"}


def test_tiny_bench_reports_every_stage_with_consistent_arithmetic(tiny_bench: tuple[dict[str, Any], str]) -> None:
    document, markdown = tiny_bench
    assert document["notice"] == "stand-in weights: timings only" and document["weights"]["standin"]
    assert "STAND-IN WEIGHTS: TIMINGS ONLY" in markdown
    assert "lse_d" not in json.dumps(document)  # no stand-in score is reported, only changes (none here)
    assert document["s3fd_batching"] == []  # --single-frames 0
    (run,) = document["runs"]
    assert_consistent(run, PIPELINE_STAGES)
    assert run["detector_frames"] == run["frames"] and run["bare"]["s3fd"] > 0
    assert run["bare"]["s3fd_calls_timed"] == run["bare"]["s3fd_calls"] == -(-run["frames"] // 8)


def test_cropped_run_reports_every_stage_with_consistent_arithmetic(tmp_path: Path) -> None:
    """The same child code in this process (its import cost paid once): the cropped protocol."""
    from pytest_lipsync.bench.child import Job, run_job
    from pytest_lipsync.bench.driver import derive_run
    from pytest_lipsync.bench.models import bench_weights

    clip = generated_clip(tmp_path, "128x128", 0.4, 1)
    job = Job("score", str(clip.path), "cropped", BASELINE, {}, bench_weights(tmp_path, standin=True), markers=True,
              quality=True, device="cpu", min_track=8, bare_calls=None, single_frames=0)  # fmt: skip
    run = derive_run({"seconds": 0.4}, job, run_job(job))
    assert_consistent(run, {"decode", "SyncNet", "distances", "quality", "other"})
    assert "detection" not in {row["stage"] for row in run["stages"]}
    assert run["bare"]["syncnet"] > 0
    assert run["bare"]["s3fd"] == run["detector_frames"] == 0


def assert_consistent(run: dict[str, Any], stages: set[str]) -> None:
    """Every stage there, and every derived number following from the raw ones (the clip lasts 0.4 s)."""
    by_stage = {row["stage"]: row for row in run["stages"]}
    assert stages <= set(by_stage)
    assert run["error"] is None and run["frames"] >= 10 and run["windows"] >= 1 and run["peak_rss_mib"] > 0
    assert run["fps"] == pytest.approx(run["frames"] / run["wall"])
    assert run["rtf"] == pytest.approx(run["wall"] / 0.4)
    assert sum(row["share"] for row in run["stages"]) == pytest.approx(1.0)
    for row in run["stages"]:
        assert row["seconds"] >= 0, row  # the paired bare passes came off detection and the wall alike
        assert row["seconds"] == pytest.approx(row["share"] * run["wall"])
        if row["seconds"] > 0:
            assert row["fps"] == pytest.approx(run["frames"] / row["seconds"])
            assert row["rtf"] == pytest.approx(row["seconds"] / 0.4)
    bare = run["bare"]
    assert bare["total"] == pytest.approx(bare["s3fd"] + bare["syncnet"])
    assert run["lse_seconds"] == pytest.approx(run["wall"] - by_stage["quality"]["seconds"])
    assert run["overhead_ratio"] == pytest.approx(run["lse_seconds"] / bare["total"])


def test_s3fd_batched_against_single_frames(s3fd_weights: Path) -> None:
    from pytest_lipsync.bench.bare import detector_throughput
    from pytest_lipsync.faces.s3fd import S3FDDetector, load_s3fd

    frames = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    check = detector_throughput(S3FDDetector(load_s3fd(s3fd_weights, "cpu"), "cpu"), frames, batch=2)
    assert (check["frames"], check["batch"]) == (2, 2)
    assert check["speedup"] == pytest.approx(check["batched_fps"] / check["single_fps"])


def test_paired_calls_time_the_first_and_every_nth_call_of_each_shape_again_and_scale() -> None:
    import torch

    from pytest_lipsync.bench.bare import PairedCalls

    seen: list[tuple[int, ...]] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return x * 2

    paired = PairedCalls(model, torch.device("cpu"), every=3)
    full, last = torch.ones(2, 3), torch.ones(1, 3)
    outputs = [paired(full) for _ in range(7)] + [paired(last)]
    assert all(torch.equal(out, x * 2) for out, x in zip(outputs, [full] * 7 + [last], strict=True))
    assert paired.calls == 8 and paired.timed_calls == 4  # calls 1, 4 and 7 of one shape, the first of the other
    assert seen == [(2, 3)] * (7 + 3) + [(1, 3)] * 2  # each call, then again when paired
    assert paired.total() > 0 and paired.spent > 0


def test_a_failing_run_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    from pytest_lipsync.bench.driver import BenchPlan, run_plan
    from pytest_lipsync.bench.models import BenchWeights
    from pytest_lipsync.bench.report import format_report

    clip = generated_clip(tmp_path, "128x128", 0.4, 1)
    missing = BenchWeights(str(tmp_path / "none.model"), str(tmp_path / "none.pth"), standin=True)
    plan = BenchPlan((clip,), ("cropped",), variants(["fidelity=clean"]), missing, "cpu", False, None, 0, tmp_path)
    lines: list[str] = []
    document = run_plan(plan, lines.append)
    assert document["runs"] == [] and len(document["failed"]) == 2  # the second ran after the first failed
    assert document["failed"][0].startswith("benchmark run 1 (128x128_0.4s_1face.mp4, cropped, baseline) failed:")
    assert "none.model" in document["failed"][1]
    assert "**Failed**: benchmark run 2" in format_report(document)
