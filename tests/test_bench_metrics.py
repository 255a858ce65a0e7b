"""``lipsync bench --metrics``: the options, the timing harness of LPIPS, FID and CPBD, the peer loops, the report.

No assertion is about speed: the harness runs, its rows hold every field and their arithmetic, and the peers'
loops compute what the package computes on the same frames (so that timing one against the other compares
the same work).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_lipsync.bench.bare import PairedCalls
from pytest_lipsync.bench.clips import generated_clip
from pytest_lipsync.bench.frame_metrics import first_frames, measure_metrics, pairing
from pytest_lipsync.bench.models import standin_metric_weights
from pytest_lipsync.bench.peers import pytorch_fid_activations, pytorch_fid_statistics
from pytest_lipsync.bench.plan import PRESETS
from pytest_lipsync.bench.report import format_report
from pytest_lipsync.cli.app import main
from pytest_lipsync.cli.bench import add_bench_arguments, make_plan
from pytest_lipsync.quality.fid import InceptionFeatures, RunningStatistics

FIELDS = {"metric", "frames", "width", "height", "seconds", "bare", "ratio", "peer", "vs_peer", "agreement"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.4 s 128x128 generated clip: 10 frames."""
    return generated_clip(tmp_path_factory.mktemp("clips"), "128x128", 0.4, 1).path


def test_metric_options_make_the_plan(tmp_path: Path) -> None:
    args = parse(["--metrics", "lpips", "cpbd", "lpips", "--metric-frames", "5", "--metrics-only",
                  "--resolutions", "128x128", "--seconds", "0.4", "--faces", "1"])  # fmt: skip
    plan = make_plan(args, PRESETS["quick"], tmp_path)
    assert (plan.metrics, plan.metric_frames, plan.lse) == (("lpips", "cpbd"), 5, False)
    assert set(plan.metric_weights) == {"lpips-trunk", "lpips-heads"}  # CPBD has no network
    assert all(Path(path).is_file() and Path(path).parent == tmp_path for path in plan.metric_weights.values())
    default = make_plan(parse(["--metrics", "fid", "--resolutions", "128x128", "--seconds", "0.4"]), PRESETS["quick"],
                        tmp_path)  # fmt: skip
    assert (default.metric_frames, default.lse, set(default.metric_weights)) == (16, True, {"fid"})
    assert make_plan(parse(["--resolutions", "128x128", "--seconds", "0.4"]), PRESETS["quick"], tmp_path).metrics == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-only"], "--metrics-only times nothing without --metrics"),
        (["--metrics", "cpbd", "--metric-frames", "2"], "--metric-frames is 2"),
    ],
)
def test_metric_option_errors_are_usage_errors_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["bench", *argv, "--workdir", str(tmp_path), "-q"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_metric_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--metrics", "psnr"])
    assert exited.value.code == 2
    assert "invalid choice: 'psnr'" in capsys.readouterr().err


def test_pairing_times_the_bare_forward_after_each_call_and_restores_the_module() -> None:
    net = torch.nn.Conv2d(3, 2, 1)
    original = net.forward
    paired = PairedCalls(original, torch.device("cpu"))
    x = torch.ones(1, 3, 4, 4)
    with pairing(net, paired):
        out = net(x)
    assert torch.equal(out, original(x))
    assert (paired.calls, paired.timed_calls) == (1, 1) and paired.total() > 0
    assert "forward" not in vars(net) and net.forward == original
    net(x)
    assert paired.calls == 1  # no longer wrapped


def test_first_frames_are_the_decoded_rgb_frames(clip: Path) -> None:
    from pytest_lipsync.media.decode import open_video

    frames = first_frames(clip, 6)
    every = np.concatenate(list(open_video(clip).frames(4, pix_fmt="rgb24")))
    np.testing.assert_array_equal(frames, every[:6])
    assert len(first_frames(clip, 100)) == len(every) == 10


def test_lpips_and_cpbd_rows_hold_every_field_and_the_lpips_peer_computes_the_same(clip: Path, tmp_path: Path) -> None:
    weights = standin_metric_weights(tmp_path, ("lpips", "cpbd"))
    lpips_row, cpbd_row = measure_metrics(str(clip), ("lpips", "cpbd"), 5, weights, "cpu")
    for row in (lpips_row, cpbd_row):
        assert set(row) == FIELDS
        assert (row["frames"], row["width"], row["height"]) == (5, 128, 128)
        assert row["seconds"] > 0 and row["bare"] > 0
        assert row["ratio"] == pytest.approx(row["seconds"] / row["bare"])
    assert lpips_row["metric"] == "lpips" and lpips_row["peer"] > 0
    assert lpips_row["vs_peer"] == pytest.approx(lpips_row["peer"] / lpips_row["seconds"])
    assert lpips_row["agreement"] < 1e-5  # the lpips package's per-frame loop gives the package's distances
    assert cpbd_row["metric"] == "cpbd" and cpbd_row["peer"] is None and cpbd_row["agreement"] is None


def test_the_pytorch_fid_loop_prepares_and_summarises_frames_as_fid_does() -> None:
    """A stand-in "network" (a few pixels of the prepared input) makes the preparation and statistics visible."""
    frames = np.random.default_rng(0).integers(0, 256, (7, 40, 56, 3), dtype=np.uint8)

    def network(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :, 0, 0], x[:, :, 100, 200], x[:, :, 298, 37]], dim=1)

    mean, covariance = pytorch_fid_statistics(pytorch_fid_activations(network, frames, torch.device("cpu"), 3))
    running = RunningStatistics()
    running.add(network(InceptionFeatures.prepare(torch.from_numpy(frames))).numpy())
    statistics = running.statistics()
    np.testing.assert_allclose(mean, statistics.mean, rtol=1e-12)
    np.testing.assert_allclose(covariance, statistics.covariance, rtol=1e-9, atol=1e-15)


def test_the_report_shows_the_frame_metrics_per_frame_and_says_stand_in() -> None:
    row = {"clip": "c", "metric": "lpips", "frames": 4, "width": 128, "height": 96, "seconds": 0.2, "bare": 0.1,
           "ratio": 2.0, "peer": 0.8, "vs_peer": 4.0, "agreement": 3e-8, "device": "cpu", "threads": 2,
           "torch": "2", "peak_rss_mib": 1.0}  # fmt: skip
    machine = {"processor": "x", "cpus": 2, "platform": "p", "python": "3", "device": "cpu", "load_average": [0.5, 3]}
    document: dict[str, Any] = {"notice": "stand-in weights: timings only", "weights": {"standin": True},
                                "machine": machine, "runs": [], "s3fd_batching": [], "memory": [],
                                "frame_metrics": [row], "failed": []}  # fmt: skip
    text = format_report(document)
    assert "Frame metrics (networks with stand-in weights: timings only)" in text
    assert (
        "| c    | lpips  | 128x96     | 4      | 50.0     | 25.0          | 2.00x | 200.0         | 4.00x   | 3.0e-08"
        in text
    )
    assert "wall s" not in text  # no LSE run: no summary table
    assert "torch 2, 2 threads" in text and "Load average (1 min) 0.5 before, 3.0 after" in text


@pytest.mark.slow  # Inception v3 on 299x299 frames, six batches
def test_fid_row_times_the_frechet_distance_and_agrees_with_pytorch_fid(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_lipsync.quality import fid

    compared: list[tuple[int, int]] = []

    def frechet(generated: fid.FeatureStatistics, reference: fid.FeatureStatistics) -> fid.FidResult:
        """Stands in for the square root of a 2048x2048 matrix (a minute on two cores), recording its inputs."""
        compared.append((generated.frames, reference.frames))
        return fid.FidResult(0.0, generated.frames, reference.frames, regularised=False)

    monkeypatch.setattr(fid, "frechet_distance", frechet)
    (row,) = measure_metrics(str(clip), ("fid",), 4, standin_metric_weights(tmp_path, ("fid",)), "cpu")
    assert set(row) == FIELDS | {"frechet_seconds"} and row["frechet_seconds"] >= 0
    assert compared == [(4, 4)]  # the generated frames against their reference frames, once
    assert row["ratio"] == pytest.approx(row["seconds"] / row["bare"])
    assert row["vs_peer"] == pytest.approx(row["peer"] / row["seconds"])
    # The package feeds Inception channels-last tensors, pytorch-fid contiguous ones: float32 rounding apart,
    # which the covariance of four near-identical frames magnifies.
    assert row["agreement"] < 1e-4


@pytest.mark.slow  # a child process end to end
def test_bench_metrics_only_end_to_end(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--clips", str(clip.parent), "--metrics", "cpbd", "lpips", "--metrics-only",
            "--metric-frames", "4", "--workdir", str(tmp_path / "work"), "--json", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    document = json.loads(out.read_text())
    assert document["runs"] == [] and document["s3fd_batching"] == [] and document["failed"] == []
    assert len(document["machine"]["load_average"]) == 2
    assert [(row["clip"], row["metric"]) for row in document["frame_metrics"]] == [(clip.stem, "cpbd"),
                                                                                    (clip.stem, "lpips")]  # fmt: skip
    assert all(row["peak_rss_mib"] > 0 and row["threads"] >= 1 for row in document["frame_metrics"])


def test_a_clip_too_short_for_the_metrics_is_named(tmp_path: Path) -> None:
    short = generated_clip(tmp_path, "128x128", 0.08, 1).path  # 2 frames
    with pytest.raises(ValueError, match=f"{short.name}: 2 frames, too few"):
        first_frames(short, 10)
