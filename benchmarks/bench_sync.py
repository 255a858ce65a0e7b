"""SyncNet scoring of a face-crop clip against the bare model forward passes for the same windows.

    python benchmarks/bench_sync.py                            # 20 s 224x224 clip, both fidelities
    python benchmarks/bench_sync.py --seconds 60 --json bench_sync.json
    python benchmarks/bench_sync.py --memory 30 300            # peak RSS of a 30 s and a 300 s clip

The clip is generated (fixtures/media.py) and the weights are the deterministic stand-in weights
(fixtures/weights.py): the timings are real, the LSE numbers say nothing about lip sync. "bare" is the
lip tower over the same frames plus the audio tower over the same MFCC windows, inputs prepared in
advance, timed in the same process right after scoring: the floor that decoding, MFCC, batching and the
distances add to. ``--memory`` scores each length in a fresh process and reports that process's own peak RSS
(``VmHWM``), because peak RSS cannot be reset inside one process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import peak_rss_mib  # noqa: E402
from fixtures.media import ClipSpec, write_clip  # noqa: E402
from fixtures.weights import standin_syncnet_file  # noqa: E402

CROP = 224


@dataclass(frozen=True)
class Row:
    fidelity: str
    seconds: float
    windows: int
    score_s: float
    bare_s: float
    stages: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.score_s / self.bare_s


def make_clip(directory: Path, seconds: float) -> Path:
    return write_clip(directory / f"bench_{seconds:g}s.mp4", ClipSpec(seconds=seconds, width=CROP, height=CROP, seed=5))


def scorer(fidelity: str, batch_size: int):  # type: ignore[no-untyped-def]
    from pytest_lipsync import Settings
    from pytest_lipsync.scoring import Scorer

    weights = str(standin_syncnet_file())
    settings = Settings(protocol="cropped", fidelity=fidelity, device="cpu", syncnet_weights=weights, offline=True)
    return Scorer(settings.replace(batch_size=batch_size))


def bare_forward(net, frames: int, windows: int, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds for the towers alone over ``windows`` windows, in the batches the scorer uses."""
    import torch

    generator = torch.Generator().manual_seed(0)
    video = torch.rand(3, frames, CROP, CROP, generator=generator) * 255
    mfcc = torch.randn(windows, 1, 13, 20, generator=generator)
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, windows, batch_size):
            count = min(batch_size, windows - first)
            net.forward_lip_sequence(video[:, first : first + count + 4])
            net.forward_aud(mfcc[first : first + count])
    return time.perf_counter() - started


def measure(clip: Path, seconds: float, fidelity: str, batch_size: int) -> Row:
    held = scorer(fidelity, batch_size)
    held.score(clip)  # warm-up: first-call allocations and kernel selection
    started = time.perf_counter()
    result = held.score(clip)
    elapsed = time.perf_counter() - started
    if result.error is not None:
        raise SystemExit(f"scoring failed: {result.error.message}")
    windows = result.tracks[0].windows
    bare = bare_forward(held._sync.net, result.frames, windows, batch_size)
    return Row(fidelity, seconds, windows, elapsed, bare, dict(result.timings))


def score_for_memory(clip: Path, fidelity: str, batch_size: int) -> float:
    """Score ``clip`` and return this process's peak RSS; run in a fresh process per clip."""
    result = scorer(fidelity, batch_size).score(clip)
    if result.error is not None:
        raise RuntimeError(result.error.message)
    return peak_rss_mib()


def fresh_peak_rss_mib(clip: Path, fidelity: str, batch_size: int) -> float:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        return fresh.submit(score_for_memory, clip, fidelity, batch_size).result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length (default 20)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--memory", type=float, nargs="*", metavar="SECONDS", help="peak RSS for these lengths")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, stand-in weights (timings only)")
    document: dict[str, object] = {"seconds": args.seconds, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as directory:
        clip = make_clip(Path(directory), args.seconds)
        rows = [measure(clip, args.seconds, fidelity, args.batch_size) for fidelity in ("clean", "reference")]
        print(f"{'fidelity':10} {'windows':>7} {'score s':>8} {'bare s':>7} {'ratio':>6} {'win/s':>6}  stages (s)")
        for row in rows:
            stages = " ".join(f"{name}={value:.2f}" for name, value in row.stages.items())
            print(
                f"{row.fidelity:10} {row.windows:7d} {row.score_s:8.2f} {row.bare_s:7.2f} {row.ratio:6.3f} "
                f"{row.windows / row.score_s:6.1f}  {stages}"
            )
        document["rows"] = [asdict(row) | {"ratio": row.ratio} for row in rows]
        if args.memory:
            memory = {}
            for seconds in args.memory:
                memory[seconds] = fresh_peak_rss_mib(make_clip(Path(directory), seconds), "reference", args.batch_size)
                print(f"peak RSS, {seconds:g} s clip (reference fidelity): {memory[seconds]:.0f} MiB")
            document["peak_rss_mib"] = memory
    print(f"this process: peak RSS {peak_rss_mib():.0f} MiB")
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
