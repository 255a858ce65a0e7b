"""How 8-bit RGB frames become the float64 planes both metrics compare, and the luma of ``color = "y"``.

Luma is defined exactly so that anyone can recompute it: Y = 0.299 R + 0.587 G + 0.114 B, the BT.601
luma weights, applied to the 8-bit values 0..255 in float64 and **not rounded** (OpenCV's
``COLOR_RGB2GRAY`` rounds to uint8, and that rounding noise alone moves the PSNR of close frames by a dB
or more). Both metrics then use
``data_range = 255``, so scikit-image gives the same numbers on the same luma image:
``structural_similarity(y_gt, y_gen, data_range=255)`` and ``peak_signal_noise_ratio(y_gt, y_gen,
data_range=255)``.

This is full-range luma. Super-resolution codebases (BasicSR's ``test_y_channel``, MATLAB's ``rgb2ycbcr``)
use studio-range Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 instead; it squeezes the values into
16..235 and gives different numbers, so the two must not be mixed in one table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.quality.settings import Color

# Integers, so that 1000 Y of 8-bit values is an integer below 2^24: exact even in float32 (see psnr.py).
LUMA_PER_MILLE = (299, 587, 114)
LUMA_WEIGHTS = tuple(weight / 1000 for weight in LUMA_PER_MILLE)  # 0.299, 0.587, 0.114


def float_planes(frame: np.ndarray, color: Color) -> np.ndarray:
    """One (H, W, 3) uint8 frame as float64 (H, W, C) planes: C = 3 for RGB, 1 for luma."""
    import cv2

    planes = frame.astype(np.float64)
    if color == "rgb":
        return planes
    return cv2.transform(planes, np.array([LUMA_WEIGHTS])).reshape(*frame.shape[:2], 1)


def float_planes_torch(frames: torch.Tensor, color: Color) -> torch.Tensor:
    """A (B, H, W, 3) uint8 batch as float64 (B, C, H, W), the layout ``conv2d`` filters."""
    import torch

    planes = frames.to(torch.float64)
    if color == "y":
        planes = planes @ torch.tensor(LUMA_WEIGHTS, dtype=torch.float64, device=planes.device).view(3, 1)
    return planes.permute(0, 3, 1, 2)


def check_pair(gt: np.ndarray | torch.Tensor, gen: np.ndarray | torch.Tensor, uint8: object) -> None:
    """Refuse anything but two equal-shaped (B, H, W, 3) uint8 batches.

    The metrics equal scikit-image's only on 8-bit data with ``data_range = 255``; a float batch or a
    single frame would still produce numbers, wrong ones, so shape and dtype are checked, not trusted.
    """
    if gt.dtype != uint8 or gen.dtype != uint8:
        raise TypeError(f"frames must be uint8, got {gt.dtype} and {gen.dtype}")
    if len(gt.shape) != 4 or gt.shape[-1] != 3:
        raise ValueError(f"frames must be a (B, H, W, 3) RGB batch, got shape {tuple(gt.shape)}")
    if tuple(gt.shape) != tuple(gen.shape):
        raise ValueError(f"frame batches differ in shape: {tuple(gt.shape)} and {tuple(gen.shape)}")
