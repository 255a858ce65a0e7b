"""The models alone on the same work as a run: the floor that decoding, cropping and bookkeeping add to.

Inputs are made before the clock starts and have the shapes the run used (S3FD: the same number of calls
with the same batch and input size, timed between the run's own calls; SyncNet: the same windows in the same
batches, after the run), so that ``end-to-end / bare`` is the overhead of everything that is not a forward
pass.
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


Shape = tuple[int, int, int]  # (batch, height, width) of one detector call


def random_network_input(detector: S3FDDetector, shape: Shape) -> torch.Tensor:
    """S3FD's network input for random frames of ``shape``, made by the detector's own preparation (resize,
    layout, mean), so that a timed forward pass reads what the run's passes read."""
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    return detector.network_input(frames)


def forward_seconds(detector: S3FDDetector, x: torch.Tensor) -> float:
    """Seconds of one S3FD forward pass on ``x``, in the run's precision."""
    import torch

    with torch.inference_mode(), forward_context(detector, detector.device):
        return timed(lambda: detector.net(x), detector.device)


class PairedS3FD:
    """S3FD's bare forward pass, timed right after the run's own detector calls on an input of the same shape.

    Timed after the run instead, the bare pass drifted by up to 25% from one minute to the next on a shared
    2-core machine: more than the overhead it is the floor of. Each bare pass here runs under the load the
    run's call just ran under. It follows the first call of each shape and then every ``every``-th.
    """

    def __init__(self, detector: S3FDDetector, every: int = 1) -> None:
        self.detector = detector
        self.every = every
        self._inputs: dict[Shape, torch.Tensor] = {}
        self._seconds: dict[Shape, float] = {}
        self._timed: dict[Shape, int] = {}

    def after(self, shape: Shape, call: int) -> None:
        """The run just made its ``call``-th call (from 1) of this shape."""
        if (call - 1) % self.every:
            return
        if shape not in self._inputs:
            self._inputs[shape] = random_network_input(self.detector, shape)
        self._seconds[shape] = self._seconds.get(shape, 0.0) + forward_seconds(self.detector, self._inputs[shape])
        self._timed[shape] = self._timed.get(shape, 0) + 1

    @property
    def timed_calls(self) -> int:
        return sum(self._timed.values())

    def total(self, calls: Mapping[Shape, int]) -> float:
        """Seconds of the bare forward over every call of the run, each shape's calls at their timed mean."""
        return sum(self._seconds[shape] / self._timed[shape] * count for shape, count in calls.items())


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
