"""CPBD against its peer, the ``cpbd`` package's ``compute(image)`` called per frame, on the same frames.

    python benchmarks/bench_metrics.py                        # 16 frames of a 224x224 generated clip
    python benchmarks/bench_metrics.py --size 1280x720 --frames 4

``lipsync bench --metrics ...`` times LPIPS, FID and CPBD against their bare computation and LPIPS and FID
against their peers' loops. CPBD's peer cannot be run (it imports ``scipy.ndimage.imread``, gone from SciPy)
and loops over every pixel in Python; this script times it from a checkout through the tests' literal
rendering of its steps (``literal_cpbd`` in tests/test_quality_cpbd.py), which computes what it computes
with the same library calls. One step is swapped for fairness: the package thins its Sobel edges with array
operations, where the rendering loops per pixel, so the package's :func:`~pytest_lipsync.quality.cpbd.sobel_edges`
(equal to the loop: ``test_edges_and_widths_equal_the_literal_walks``) runs in its place.

The frames are those ``lipsync bench`` times (:func:`~pytest_lipsync.bench.frame_metrics.first_frames` of a
generated clip); the package's CPBD runs in the scoring core's batches, the peer one frame per call, batch by
batch in turn so that both see the same load. CPBD has no weights: its values are real and are compared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.test_quality_cpbd as rendering  # noqa: E402  # the checkout's tests: the peer's steps
from pytest_lipsync.bench.clips import generated_clip  # noqa: E402
from pytest_lipsync.bench.frame_metrics import batches, first_frames  # noqa: E402
from pytest_lipsync.quality.cpbd import cpbd, grayscale, sobel_edges  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="224x224", help="frame WIDTHxHEIGHT of the generated clip (default 224x224)")
    parser.add_argument("--frames", type=int, default=16, help="frames timed (default 16)")
    args = parser.parse_args(argv)
    rendering.literal_sobel_edges = sobel_edges  # the package's vectorised thinning, as the peer's (docstring)
    with tempfile.TemporaryDirectory(prefix="bench-cpbd-") as scratch:
        clip = generated_clip(Path(scratch), args.size, args.frames / 25 + 0.2, 1)
        frames = first_frames(clip.path, args.frames)
    cpbd(frames[:1])  # warm-up: scikit-image loads its modules on the first call
    ours, theirs, package_seconds, peer_seconds = [], [], 0.0, 0.0
    for part in batches(len(frames)):
        started = time.perf_counter()
        ours.append(cpbd(frames[part]))
        middle = time.perf_counter()
        theirs.extend(rendering.literal_cpbd(image) for image in grayscale(frames[part]))
        package_seconds += middle - started
        peer_seconds += time.perf_counter() - middle
    difference = float(np.max(np.abs(np.concatenate(ours) - np.array(theirs))))
    package_ms, peer_ms = (1000 * seconds / len(frames) for seconds in (package_seconds, peer_seconds))
    print(
        f"CPBD, {len(frames)} frames of {args.size}, {os.cpu_count()} CPUs, NumPy {np.__version__}: package "
        f"{package_ms:.1f} ms/frame, peer loops {peer_ms:.1f} ms/frame ({peer_ms / package_ms:.1f}x); "
        f"largest difference {difference:.1e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
