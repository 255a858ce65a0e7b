"""PSNR per frame, equal to ``skimage.metrics.peak_signal_noise_ratio(gt, gen, data_range=255)``.

On 8-bit RGB the squared error of a frame is a sum of integers, which OpenCV's ``norm`` computes exactly,
so the mean squared error and the PSNR are the very floats scikit-image returns, at a fraction of its cost
(it converts both frames to float64 first). Luma is linear, so its squared error is that of the luma of
the difference; 1000 times that luma is an integer below 2^24, exact in float32, whose squares OpenCV sums
in double: equal to scikit-image's float64 luma to rounding (about 1e-15 dB), at a quarter of the memory.

**Identical frames.** Their PSNR is infinite, and the functions here return ``inf`` as scikit-image does.
Lip-sync generators often pass frames through untouched (no face found, silence), so identical frames are
common, and one of them would make a video's mean PSNR infinite: useless for a gate and not standard JSON.
Results therefore report every frame's PSNR capped at :data:`PSNR_CAP_DB` = 100 dB, take the mean over the
capped values, and count the identical frames separately (``identical_frames``), so nothing is hidden:
a mean of 100 dB with ``identical_frames == frames`` is a perfect copy. 100 dB is the usual convention;
it is above any finite PSNR of an 8-bit 224x224 RGB face crop (at most 99.9 dB: one value off by one
level) and far above visible differences (about 50 dB). On large frames a handful of values off by one
level can exceed 100 dB; such a frame is, for every practical purpose, identical and is reported as 100.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from pytest_lipsync.quality.color import LUMA_PER_MILLE, check_pair, float_planes_torch

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.quality.settings import Color

DATA_RANGE = 255.0
PSNR_CAP_DB = 100.0
_STRIP_ROWS = 32

Values = TypeVar("Values", np.ndarray, "torch.Tensor")


def psnr(gt: np.ndarray, gen: np.ndarray, *, color: Color = "rgb") -> np.ndarray:
    """Per-frame PSNR (float64, ``inf`` for identical frames) of two (B, H, W, 3) uint8 RGB batches."""
    check_pair(gt, gen, np.uint8)
    squared = [_squared_error(reference, generated, color) for reference, generated in zip(gt, gen)]
    values_per_frame = gt.shape[1] * gt.shape[2] * (3 if color == "rgb" else 1)
    return _psnr_from_mse(np.asarray(squared, dtype=np.float64) / values_per_frame)


def psnr_torch(gt: torch.Tensor, gen: torch.Tensor, *, color: Color = "rgb") -> torch.Tensor:
    """The same on torch tensors (any device), for batches that are already on the GPU."""
    import torch

    check_pair(gt, gen, torch.uint8)
    difference = float_planes_torch(gt, color) - float_planes_torch(gen, color)
    return _psnr_from_mse(difference.square().mean(dim=(1, 2, 3)))


def reported_psnr(values: np.ndarray) -> np.ndarray:
    """PSNR as results report it: capped at :data:`PSNR_CAP_DB` (see the module docstring)."""
    return np.minimum(values, PSNR_CAP_DB)


def _squared_error(gt: np.ndarray, gen: np.ndarray, color: Color) -> float:
    import cv2

    if color == "rgb":
        return cv2.norm(gt, gen, cv2.NORM_L2SQR)
    return sum(_luma_squared_error(gt[rows], gen[rows]) for rows in _strips(len(gt))) / 1e6


def _strips(height: int) -> Iterator[slice]:
    """Row ranges of :data:`_STRIP_ROWS`: the float32 difference and its luma of a strip stay in cache."""
    return (slice(start, start + _STRIP_ROWS) for start in range(0, height, _STRIP_ROWS))


def _luma_squared_error(gt: np.ndarray, gen: np.ndarray) -> float:
    """Sum of squared ``1000 Y`` of the difference: integer squares, summed exactly in double per strip."""
    import cv2

    difference = cv2.subtract(gt, gen, dtype=cv2.CV_32F)  # exact: integers in -255..255
    luma_per_mille = cv2.transform(difference, np.array([LUMA_PER_MILLE], np.float32))
    return cv2.norm(luma_per_mille, cv2.NORM_L2SQR)


def _psnr_from_mse(mse: Values) -> Values:
    """scikit-image's expression, operation for operation, so the floats are the same."""
    with np.errstate(divide="ignore"):
        ratio = DATA_RANGE**2 / mse
    return 10 * (np.log10(ratio) if isinstance(ratio, np.ndarray) else ratio.log10())
