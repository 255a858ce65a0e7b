"""LPIPS, FID and CPBD: each batched against its bare network forward, and against a per-frame loop.

    python benchmarks/bench_metrics.py                          # 224x224 frames (face crops), 16 frames, CPU
    python benchmarks/bench_metrics.py --size 320x240 --frames 32 --lpips-net vgg --json bench_metrics.json
    python benchmarks/bench_metrics.py --device cuda

STAND-IN WEIGHTS: the networks carry seeded weights in the released layouts (the releases cannot be
downloaded here), so every number below is a timing; the metric values mean nothing.

For each metric, on the same deterministic frames (smooth moving colour fields with noise, and a noisy copy
as the "generated" video):

- ``batched``: the package's function on ``--frames`` frames in batches of ``--batch``;
- ``bare``: what cannot be avoided, on the same frames already turned into input tensors: for LPIPS the
  trunk's forward pass on the 2B frames of a batch, for FID the Inception's on the prepared 299x299
  frames; CPBD has no network, so its bare cost is scikit-image's Canny and SciPy's Sobel convolution,
  the library calls it is built on. ``ratio`` = batched / bare, whose goal is 1.15 or less;
- ``per-frame``: the package's function called one frame at a time, as evaluation scripts call
  ``lpips``, pytorch-fid's model or ``cpbd.compute`` per image; for CPBD also the reference's pixel
  loops as the tests render them (``tests/test_quality_cpbd.py``), on a quarter of the frames.

FID's batched time covers preparing, the forward pass and folding the features into the running float64
sums; the Fréchet distance of two 2048-dimensional statistics (a matrix square root, once per comparison)
is timed on its own. Every time is the best of ``--repeats`` interleaved rounds after a warm-up round.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_lipsync.models.registry import FID_INCEPTION
from pytest_lipsync.models.resolve import resolve_weights
from pytest_lipsync.quality.cpbd import SOBEL_KERNEL, cpbd, grayscale
from pytest_lipsync.quality.fid import (
    InceptionFeatures,
    RunningStatistics,
    SampledStatistics,
    frechet_distance,
    load_inception_features,
)
from pytest_lipsync.quality.lpips import LPIPS, TRUNKS, WEIGHTS, LpipsNet, load_lpips, lpips
from pytest_lipsync.quality.networks.base import on_meta
from pytest_lipsync.quality.networks.inception import FEATURES, FIDInceptionV3
from pytest_lipsync.synthetic.networks import save_state_dict, standin_heads_state_dict, standin_network_state_dict

TABLE = "{:12} {:>10} {:>10} {:>7} {:>11} {:>9} {:>16}"


@dataclass(frozen=True)
class Row:
    metric: str
    batched_s: float
    bare_s: float
    per_frame_s: float
    frames: int
    reference_loops_s: float | None = None

    @property
    def ratio(self) -> float:
        return self.batched_s / self.bare_s

    def line(self) -> str:
        per_frame_speedup = f"{self.per_frame_s / self.batched_s:.2f}x"
        loops = "-" if self.reference_loops_s is None else f"{self.reference_loops_s:.3f}"
        return TABLE.format(
            self.metric, f"{self.batched_s:.3f}", f"{self.bare_s:.3f}", f"{self.ratio:.3f}",
            f"{self.per_frame_s:.3f}", per_frame_speedup, loops,
        )  # fmt: skip


def interleaved(repeats: int, **runs: Callable[[], object]) -> dict[str, float]:
    """Best time of each run over ``repeats`` rounds that take them in turn, after one warm-up round: on a
    shared machine the load drifts, and interleaving lets every run see the same drift."""
    best = dict.fromkeys(runs, float("inf"))
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def frame_pair(count: int, width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width, 0:1][:2] / max(width, height)  # (H, W, 1): broadcast over channels
    phases = rng.random((count, 1, 1, 3)) * 6
    fields = np.sin(7 * columns + 4 * rows + np.arange(count)[:, None, None, None] / 5 + phases)
    gt = np.clip(127 + 100 * fields + rng.normal(0, 6, (count, height, width, 3)), 0, 255).astype(np.uint8)
    gen = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    return gt, gen


def batches(count: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, count, size)]


def standin_lpips(net: LpipsNet, directory: Path, device: str) -> LPIPS:
    layout = on_meta(TRUNKS[net])
    trunk = save_state_dict(standin_network_state_dict(layout), directory / f"{net}-trunk.pth")
    heads = save_state_dict(standin_heads_state_dict(layout.CHANNELS), directory / f"{net}-heads.pth")
    trunk_spec, heads_spec = WEIGHTS[net]
    return load_lpips(net, resolve_weights(trunk_spec, trunk), resolve_weights(heads_spec, heads), device)


def standin_inception(directory: Path, device: str) -> InceptionFeatures:
    path = save_state_dict(standin_network_state_dict(on_meta(FIDInceptionV3)), directory / "inception.pth")
    return load_inception_features(resolve_weights(FID_INCEPTION, path), device)


def bench_lpips(model: LPIPS, gt: np.ndarray, gen: np.ndarray, batch: int, repeats: int, name: str) -> Row:
    device = model.levels.device
    inputs = [
        torch.cat([torch.from_numpy(gt[part]), torch.from_numpy(gen[part])]).to(device).permute(0, 3, 1, 2).float()
        for part in batches(len(gt), batch)
    ]

    def bare() -> None:
        with torch.inference_mode():
            for tensor in inputs:
                model.trunk(tensor)
        synchronise(device)

    times = interleaved(
        repeats,
        batched=lambda: [lpips(gt[part], gen[part], model) for part in batches(len(gt), batch)],
        bare=bare,
        per_frame=lambda: [lpips(gt[i : i + 1], gen[i : i + 1], model) for i in range(len(gt))],
    )
    return Row(name, times["batched"], times["bare"], times["per_frame"], len(gt))


def bench_fid(features: InceptionFeatures, frames: np.ndarray, batch: int, repeats: int) -> Row:
    device = next(features.net.parameters()).device
    parts = batches(len(frames), batch)
    prepared = [InceptionFeatures.prepare(torch.from_numpy(frames[part]).to(device)) for part in parts]

    def bare() -> None:
        with torch.inference_mode():
            for tensor in prepared:
                features.net(tensor)
        synchronise(device)

    def fold(size: int) -> None:
        sampled = SampledStatistics(features)
        for part in batches(len(frames), size):
            sampled.add(frames[part])

    times = interleaved(repeats, batched=lambda: fold(batch), bare=bare, per_frame=lambda: fold(1))
    return Row("fid", times["batched"], times["bare"], times["per_frame"], len(frames))


def bench_cpbd(frames: np.ndarray, batch: int, repeats: int, loops: bool) -> Row:
    from scipy.ndimage import convolve
    from skimage.feature import canny

    gray = grayscale(frames).astype(np.float64)

    def bare() -> None:
        for image in gray:
            canny(image)
            convolve(image, SOBEL_KERNEL)

    times = interleaved(
        repeats,
        batched=lambda: [cpbd(frames[part]) for part in batches(len(frames), batch)],
        bare=bare,
        per_frame=lambda: [cpbd(frames[i : i + 1]) for i in range(len(frames))],
    )
    reference = None
    if loops:
        from tests.test_quality_cpbd import literal_cpbd

        quarter = grayscale(frames[: max(1, len(frames) // 4)])
        start = time.perf_counter()
        for image in quarter:
            literal_cpbd(image)
        reference = (time.perf_counter() - start) * len(frames) / len(quarter)
    return Row("cpbd", times["batched"], times["bare"], times["per_frame"], len(frames), reference)


def bench_frechet() -> float:
    """One distance of full-rank 2048-dimensional statistics (it takes tens of seconds: timed once)."""
    rng = np.random.default_rng(1)
    statistics = []
    for shift in (0.0, 0.1):
        running = RunningStatistics()
        running.add(np.maximum(rng.normal(shift, 1, (2 * FEATURES + 100, FEATURES)), 0))
        statistics.append(running.statistics())
    start = time.perf_counter()
    frechet_distance(*statistics)
    return time.perf_counter() - start


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="224x224", help="frame WIDTHxHEIGHT (default 224x224, a face crop)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    parser.add_argument("--no-reference-loops", action="store_true", help="skip the slow loop rendering of cpbd")
    parser.add_argument("--no-frechet", action="store_true", help="skip the 2048-dimensional Fréchet distance")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    width, height = (int(value) for value in args.size.split("x"))
    gt, gen = frame_pair(args.frames, width, height)
    print(
        f"STAND-IN WEIGHTS (timings only): {args.frames} frames of {width}x{height}, batches of {args.batch}, "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"seconds, best of {args.repeats} interleaved rounds"
    )
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as scratch:
        lpips_model = standin_lpips(args.lpips_net, Path(scratch), args.device)
        inception = standin_inception(Path(scratch), args.device)
    rows = [
        bench_lpips(lpips_model, gt, gen, args.batch, args.repeats, f"lpips-{args.lpips_net}"),
        bench_fid(inception, gen, args.batch, args.repeats),
        bench_cpbd(gen, args.batch, args.repeats, loops=not args.no_reference_loops),
    ]
    frechet = None if args.no_frechet else bench_frechet()
    print(TABLE.format("metric", "batched", "bare", "ratio", "per-frame", "speedup", "reference loops"))
    for row in rows:
        print(row.line())
    if frechet is not None:
        print(f"frechet_distance of two {FEATURES}-dimensional statistics: {frechet:.1f} s (once per comparison)")
    if args.json:
        document = {"rows": [asdict(row) | {"ratio": row.ratio} for row in rows], "frechet_s": frechet, **vars(args)}
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
