"""The models alone on the same work as a run: the floor that decoding, cropping and bookkeeping add to.

Inputs are made before the clock starts and have the shapes the run used (S3FD: the same number of calls
with the same batch and input size; SyncNet: the same windows in the same batches), so that
``end-to-end / bare`` is the overhead of everything that is not a forward pass.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import numpy as np
    import torch

    from pytest_lipsync.faces.s3fd import S3FDDetector
    from pytest_lipsync.sync.scorer import SyncScorer


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds of ``run``, waiting for the device to finish (CUDA runs asynchronously)."""
    import torch

    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def forward_context(owner: object, device: torch.device) -> AbstractContextManager[object]:
    """The context the run's forward passes ran in: the owner's ``precision`` (autocast) when it has one."""
    precision = getattr(owner, "precision", "fp32")
    if precision == "fp32":
        return contextlib.nullcontext()
    from pytest_lipsync.models.runtime import autocast  # arrives with the precision setting

    return autocast(precision, device)


def s3fd_forward(
    detector: S3FDDetector, calls: Mapping[tuple[int, int, int], int], limit: int | None
) -> tuple[float, int]:
    """Seconds of S3FD's network on every (batch, height, width) call of the run, and how many calls were timed.

    The network input is made in advance by the detector's own preparation (resize, layout, mean), so that
    only the forward pass is timed, in the run's precision. At most ``limit`` calls per shape are timed and
    the rest scaled from them (every call of a shape costs the same); each shape runs once untimed first, as
    the run's first batch of it did.
    """
    import numpy as np
    import torch

    device = detector.device
    total, timed_calls = 0.0, 0
    for (batch, height, width), count in calls.items():
        frames = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        runs = count if limit is None else min(count, limit)
        with torch.inference_mode():
            x = detector.network_input(frames)
            with forward_context(detector, device):
                detector.net(x)
                seconds = timed(lambda: [detector.net(x) for _ in range(runs)], device)
        total += seconds * count / runs
        timed_calls += runs
    return total, timed_calls


def syncnet_forward(sync: SyncScorer, windows: int) -> float:
    """Seconds of the lip and audio towers over ``windows`` windows, in the scorer's batches and precision.

    The inputs have the run's layout: uint8 (frames, 224, 224, 3) crops turned into a (3, frames, 224, 224)
    float view, and float32 MFCC windows.
    """
    import torch

    from pytest_lipsync.sync.model import LIP_FRAMES

    device, batch_size = sync.device, sync.batch_size
    generator = torch.Generator().manual_seed(0)
    largest = min(batch_size, windows)
    crops = torch.randint(0, 256, (largest + LIP_FRAMES - 1, 224, 224, 3), dtype=torch.uint8, generator=generator)
    video = crops.to(device).permute(3, 0, 1, 2).float()
    mfcc = torch.randn(largest, 1, 13, 20, generator=generator).to(device)

    def towers() -> None:
        for first in range(0, windows, batch_size):
            count = min(batch_size, windows - first)
            sync.net.forward_lip_sequence(video[:, : count + LIP_FRAMES - 1])
            sync.net.forward_aud(mfcc[:count])

    with torch.inference_mode(), forward_context(sync, device):
        return timed(towers, device) if windows else 0.0


def detector_throughput(detector: S3FDDetector, frames: np.ndarray, batch: int) -> dict[str, float]:
    """Frames per second of S3FD (post-processing included) batched and one frame per call, same frames.

    Both shapes are warmed up first (oneDNN picks kernels per shape); each side keeps its best of two runs.
    """
    import numpy as np

    def batched_calls() -> None:
        for k in range(0, len(frames), batch):
            detector.detect(frames[k : k + batch], np.arange(k, min(k + batch, len(frames))))

    def single_calls() -> None:
        for k in range(len(frames)):
            detector.detect(frames[k : k + 1], np.array([k]))

    detector.detect(frames[:batch], np.arange(min(batch, len(frames))))
    detector.detect(frames[:1], np.array([0]))
    batched_seconds = min(timed(batched_calls, detector.device) for _ in range(2))
    single_seconds = min(timed(single_calls, detector.device) for _ in range(2))
    return {
        "frames": len(frames),
        "batch": batch,
        "batched_fps": len(frames) / batched_seconds,
        "single_fps": len(frames) / single_seconds,
        "speedup": single_seconds / batched_seconds,
    }
