"""Small signal filters the reference takes from SciPy, without depending on SciPy."""

from __future__ import annotations

import numpy as np


def medfilt(values: np.ndarray, kernel: int) -> np.ndarray:
    """``scipy.signal.medfilt``: a running median of odd width over a zero-padded 1-D signal."""
    if kernel % 2 != 1:
        raise ValueError(f"median filter kernel must be odd, got {kernel}")
    half = kernel // 2
    padded = np.concatenate([np.zeros(half, values.dtype), values, np.zeros(half, values.dtype)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel)
    return np.median(windows, axis=1).astype(values.dtype, copy=False)
