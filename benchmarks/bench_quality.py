"""PSNR/SSIM speed against scikit-image called per frame, with a check that the numbers are the same.

    python benchmarks/bench_quality.py                      # 720p and 1080p, 24 frames, every variant
    python benchmarks/bench_quality.py --frames 48 --json bench_quality.json
    python benchmarks/bench_quality.py --device cuda        # the torch functions on a GPU
    python benchmarks/bench_quality.py --stream-seconds 0   # only the per-frame functions

Frames are generated deterministically (smooth moving patterns with texture, and a noisy copy as the
"generated" video; frame 0 is an identical copy, so infinite PSNR is exercised). Both sides see the same
frames; scikit-image gets them one frame at a time, as evaluation scripts call it, and this project's
functions get batches. Exit status 1 if any value differs by more than 1e-6.

Then the product path end to end: ``compare_videos`` on two H.264 files (the same frames, encoded) of
``--stream-seconds`` and of twice that, each in a fresh process, reporting frames per second (decoding
included) and the process's peak resident memory: bounded memory means the longer video peaks no higher.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_lipsync.bench.memory import peak_rss_mib
from pytest_lipsync.quality.color import float_planes
from pytest_lipsync.quality.psnr import psnr, psnr_torch
from pytest_lipsync.quality.settings import Color, SsimWindow
from pytest_lipsync.quality.ssim import ssim, ssim_torch
from pytest_lipsync.quality.video import compare_videos

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
TOLERANCE = 1e-6
TABLE = "{:6} {:6} {:10} {:5} {:>11} {:>9} {:>8} {:>11}"
STREAM_TABLE = "{:6} {:>7} {:>6} {:>7} {:>8} {:>12}"
SKIMAGE_WINDOW_ARGS: dict[str, dict[str, object]] = {
    "uniform7": {},
    "gaussian11": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}


@dataclass(frozen=True)
class Case:
    metric: Literal["psnr", "ssim"]
    color: Color
    window: SsimWindow = "uniform7"  # PSNR ignores it

    @property
    def window_name(self) -> str:
        return self.window if self.metric == "ssim" else "-"


CASES = (
    Case("ssim", "rgb"),
    Case("psnr", "rgb"),
    Case("ssim", "rgb", "gaussian11"),
    Case("ssim", "y"),
    Case("ssim", "y", "gaussian11"),
    Case("psnr", "y"),
)


@dataclass(frozen=True)
class Row:
    size: str
    metric: str
    window: str
    color: str
    frames: int
    skimage_ms: float
    ours_ms: float
    speedup: float
    max_abs_diff: float


def frame_pairs(count: int, width: int, height: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Ground truth with structure at several scales, and a copy with noise (SSIM around 0.8 to 0.9), frame by
    frame; frame 0 is an identical copy."""
    rng = np.random.default_rng(seed)
    rows, columns = np.ogrid[0:height, 0:width]
    for t in range(count):
        gt = np.empty((height, width, 3), np.uint8)
        for channel in range(3):
            pattern = 128 + 90 * np.sin(columns / 37 + t / 5 + 2 * channel) * np.cos(rows / 29 - t / 7)
            texture = rng.integers(-20, 21, (height, width), dtype=np.int16)
            gt[:, :, channel] = np.clip(pattern + texture, 0, 255)
        noise = rng.integers(-6, 7, gt.shape, dtype=np.int16)
        yield gt, gt.copy() if t == 0 else np.clip(gt + noise, 0, 255).astype(np.uint8)


def make_pair(count: int, width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gt, gen = zip(*frame_pairs(count, width, height, seed))
    return np.stack(gt), np.stack(gen)


def skimage_function(case: Case) -> Callable[[np.ndarray, np.ndarray], float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    def planes(frame: np.ndarray) -> np.ndarray:
        return float_planes(frame, "y")[..., 0] if case.color == "y" else frame

    if case.metric == "psnr":
        return lambda gt, gen: peak_signal_noise_ratio(planes(gt), planes(gen), data_range=255)
    channels = {} if case.color == "y" else {"channel_axis": -1}
    arguments = {"data_range": 255, **channels, **SKIMAGE_WINDOW_ARGS[case.window]}
    return lambda gt, gen: structural_similarity(planes(gt), planes(gen), **arguments)


def our_function(case: Case, device: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if device == "cpu":
        if case.metric == "psnr":
            return lambda gt, gen: psnr(gt, gen, color=case.color)
        return lambda gt, gen: ssim(gt, gen, window=case.window, color=case.color)
    import torch

    def on_device(gt: np.ndarray, gen: np.ndarray) -> np.ndarray:
        gt_tensor, gen_tensor = torch.from_numpy(gt).to(device), torch.from_numpy(gen).to(device)
        if case.metric == "psnr":
            values = psnr_torch(gt_tensor, gen_tensor, color=case.color)
        else:
            values = ssim_torch(gt_tensor, gen_tensor, window=case.window, color=case.color)
        return values.cpu().numpy()

    return on_device


def time_case(gt: np.ndarray, gen: np.ndarray, case: Case, device: str, batch: int) -> tuple[float, float, float]:
    """Milliseconds per frame for scikit-image and for ours, and the largest difference between them.

    The two sides alternate batch by batch, so that load from other processes falls on both alike.
    """
    reference, ours = skimage_function(case), our_function(case, device)
    ours(gt[:1], gen[:1])  # warm-up: imports, CUDA context, kernel selection
    skimage_seconds = our_seconds = 0.0
    expected: list[float] = []
    got: list[float] = []
    for start in range(0, len(gt), batch):
        gt_batch, gen_batch = gt[start : start + batch], gen[start : start + batch]
        began = time.perf_counter()
        with np.errstate(divide="ignore"):
            expected.extend(reference(a, b) for a, b in zip(gt_batch, gen_batch))
        middle = time.perf_counter()
        got.extend(ours(gt_batch, gen_batch).tolist())
        skimage_seconds, our_seconds = skimage_seconds + middle - began, our_seconds + time.perf_counter() - middle
    expected_values, got_values = np.array(expected), np.array(got)
    finite = np.isfinite(expected_values)
    same_infinities = np.array_equal(np.isinf(got_values), np.isinf(expected_values))
    difference = (
        float(np.max(np.abs(got_values[finite] - expected_values[finite]), initial=0.0))
        if same_infinities
        else math.inf
    )
    return 1e3 * skimage_seconds / len(gt), 1e3 * our_seconds / len(gt), difference


@dataclass(frozen=True)
class StreamRow:
    size: str
    seconds: float
    frames: int
    wall_s: float
    fps: float
    peak_rss_mb: float


def write_pair(directory: Path, count: int, width: int, height: int) -> tuple[Path, Path]:
    """The benchmark's frames as two H.264 files, written frame by frame (never a whole video in memory)."""
    import av

    paths = directory / f"gt_{height}p_{count}.mkv", directory / f"gen_{height}p_{count}.mkv"
    with av.open(str(paths[0]), "w") as gt_file, av.open(str(paths[1]), "w") as gen_file:
        streams = [container.add_stream("libx264", rate=25) for container in (gt_file, gen_file)]
        for stream in streams:
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "18", "preset": "ultrafast"}
        for frames in frame_pairs(count, width, height, seed=height):
            for container, stream, frame in zip((gt_file, gen_file), streams, frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        for container, stream in zip((gt_file, gen_file), streams):
            container.mux(stream.encode(None))
    return paths


def measure_stream(reference: Path, generated: Path, device: str) -> tuple[int, float, float]:
    """Frames, seconds and peak RSS (MiB) of one ``compare_videos`` call; run in a fresh process."""
    import av  # noqa: F401 -- imported before the clock starts: a one-off cost, not a per-frame one
    import cv2  # noqa: F401

    started = time.perf_counter()
    result = compare_videos(generated, reference, device=device)
    seconds = time.perf_counter() - started
    return result.frames, seconds, peak_rss_mib()


def stream_rows(sizes: list[str], seconds: float, device: str) -> Iterator[StreamRow]:
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            for length in (seconds, 2 * seconds):
                paths = write_pair(Path(directory), round(length * 25), *SIZES[size])
                with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as fresh:
                    frames, wall, peak = fresh.submit(measure_stream, *paths, device).result()
                yield StreamRow(size, length, frames, wall, frames / wall, peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24, help="frames per size (default 24)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--device", default="cpu", help="cpu (OpenCV functions) or a torch device such as cuda")
    parser.add_argument("--batch", type=int, default=8, help="frames per call of this project's functions")
    parser.add_argument("--default-only", action="store_true", help="only SSIM uniform7/rgb and PSNR rgb")
    parser.add_argument(
        "--stream-seconds",
        type=float,
        default=2.0,
        help="compare_videos on files this long and twice as long (default 2; 0 skips)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    cases = CASES[:2] if args.default_only else CASES
    rows = []
    print(TABLE.format("size", "metric", "window", "color", "skimage ms", "ours ms", "speedup", "max |diff|"))
    for size in args.sizes:
        width, height = SIZES[size]
        gt, gen = make_pair(args.frames, width, height, seed=height)
        for case in cases:
            skimage_ms, ours_ms, difference = time_case(gt, gen, case, args.device, args.batch)
            speedup = skimage_ms / ours_ms
            rows.append(
                Row(
                    size,
                    case.metric,
                    case.window_name,
                    case.color,
                    args.frames,
                    skimage_ms,
                    ours_ms,
                    speedup,
                    difference,
                )
            )
            numbers = f"{skimage_ms:.1f}", f"{ours_ms:.1f}", f"{speedup:.1f}x", f"{difference:.1e}"
            print(TABLE.format(size, case.metric, case.window_name, case.color, *numbers), flush=True)
    streams = []
    if args.stream_seconds > 0:
        print(STREAM_TABLE.format("size", "seconds", "frames", "wall s", "frames/s", "peak RSS MiB"))
        for stream in stream_rows(args.sizes, args.stream_seconds, args.device):
            streams.append(stream)
            numbers = f"{stream.seconds:g}", stream.frames, f"{stream.wall_s:.1f}", f"{stream.fps:.1f}"
            print(STREAM_TABLE.format(stream.size, *numbers, f"{stream.peak_rss_mb:.0f}"), flush=True)
    if args.json:
        document = {
            "device": args.device,
            "rows": [asdict(row) for row in rows],
            "streams": [asdict(stream) for stream in streams],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    failed = [row for row in rows if not row.max_abs_diff <= TOLERANCE]
    for row in failed:
        print(f"MISMATCH: {row.size} {row.metric} {row.window} {row.color}: {row.max_abs_diff:.3g} > {TOLERANCE}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
