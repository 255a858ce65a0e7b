"""The models alone on the same work as a run: the floor that decoding, cropping and bookkeeping add to.

In a benchmark run every forward pass of S3FD and SyncNet is repeated on the same input right after the run's
own (:class:`PairedCalls`), so that ``end-to-end / bare`` is the overhead of everything that is not a forward
pass, both measured under the same load.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import numpy as np
    import torch

    from pytest_lipsync.faces.s3fd import S3FDDetector
    from pytest_lipsync.sync.lse import SyncScorer


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds of ``run``, from an idle device to a finished one (CUDA runs asynchronously)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def forward_context(owner: SyncScorer | S3FDDetector, device: torch.device) -> AbstractContextManager[object]:
    """The context the run's forward passes ran in: the owner's ``precision`` (autocast unless fp32)."""
    precision = owner.precision
    if precision == "fp32":
        return contextlib.nullcontext()
    from pytest_lipsync.models.runtime import autocast  # arrives with the precision setting

    return autocast(precision, device)


class PairedCalls:
    """A model call (S3FD's forward pass, one of SyncNet's towers) that, after the run's call, runs once more on
    the same input, timed: the bare pass, under the load the run's call just ran under and in its context
    (inference mode, precision).

    Timed after the run instead, the same forward pass drifted by up to 25% from one minute to the next on a
    shared 2-core machine: more than the overhead it is the floor of. ``every``: the first call of each input
    shape is paired, then every ``every``-th; the other calls count at their shape's timed mean. ``spent`` is
    the time the paired passes took, which comes off the run's figures.
    """

    def __init__(self, call: Callable[[torch.Tensor], Any], device: torch.device, every: int = 1) -> None:
        self.call = call
        self.device = device
        self.every = every
        self.spent = 0.0
        self._calls: dict[tuple[int, ...], int] = {}
        self._seconds: dict[tuple[int, ...], float] = {}
        self._timed: dict[tuple[int, ...], int] = {}

    def __call__(self, x: torch.Tensor) -> Any:
        out = self.call(x)
        shape = tuple(x.shape)
        self._calls[shape] = count = self._calls.get(shape, 0) + 1
        if (count - 1) % self.every == 0:
            started = time.perf_counter()
            self._seconds[shape] = self._seconds.get(shape, 0.0) + timed(lambda: self.call(x), self.device)
            self._timed[shape] = self._timed.get(shape, 0) + 1
            self.spent += time.perf_counter() - started
        return out

    @property
    def calls(self) -> int:
        return sum(self._calls.values())

    @property
    def timed_calls(self) -> int:
        return sum(self._timed.values())

    def total(self) -> float:
        """Seconds of the bare pass over every call of the run."""
        return sum(self._seconds[shape] / self._timed[shape] * count for shape, count in self._calls.items())


def s3fd_warm_up(detector: S3FDDetector, shape: tuple[int, int, int]) -> None:
    """One forward pass of S3FD on random frames of (batch, height, width), as the run's first call makes it."""
    import numpy as np
    import torch

    frames = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    with torch.inference_mode(), forward_context(detector, detector.device):
        detector.net(detector.network_input(frames))


def syncnet_warm_up(sync: SyncScorer, windows: int) -> None:
    """SyncNet's lip and audio towers once on a batch of ``windows`` random windows, in the run's layout (uint8
    (frames, 224, 224, 3) crops as a (3, frames, 224, 224) float view, float32 MFCC) and precision."""
    import torch

    from pytest_lipsync.sync.model import LIP_FRAMES

    generator = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (windows + LIP_FRAMES - 1, 224, 224, 3), dtype=torch.uint8, generator=generator)
    mfcc = torch.randn(windows, 1, 13, 20, generator=generator).to(sync.device)
    with torch.inference_mode(), forward_context(sync, sync.device):
        sync.net.forward_lip_sequence(crops.to(sync.device).permute(3, 0, 1, 2).float())
        sync.net.forward_aud(mfcc)


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
