"""MFCC features exactly as the reference computes them, in bounded memory.

The reference calls ``python_speech_features.mfcc(audio, 16000)`` on the whole int16 track, which builds
a (frames x 400) float64 matrix: about 200 MB for ten minutes. Every MFCC column depends only on its
own 400 samples (pre-emphasis aside, which looks one sample back), so columns are computed here for the
range a batch of windows needs, with pre-emphasis applied first and the library's own disabled: the
same float64 operations per column, equal to the whole-track result to float64 rounding (1e-12; BLAS
may order its sums differently for another number of rows).
"""

from __future__ import annotations

import math

import numpy as np
import python_speech_features

WINDOW = 400  # 25 ms at 16 kHz
STEP = 160  # 10 ms
PREEMPHASIS = 0.97
COLUMNS_PER_FRAME = 4  # 100 MFCC columns per second, 25 video frames per second


def mfcc_column_count(num_samples: int) -> int:
    """How many columns the reference's framing yields (the last frame zero-padded)."""
    return 1 if num_samples <= WINDOW else 1 + math.ceil((num_samples - WINDOW) / STEP)


def mfcc_columns(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Columns ``start .. stop-1`` of ``mfcc(audio, 16000)``, transposed to (13, stop - start)."""
    stop = min(stop, mfcc_column_count(len(audio)))
    first = start * STEP
    last = min(len(audio), (stop - 1) * STEP + WINDOW)
    signal = audio[first:last].astype(np.float64)
    previous = np.float64(audio[first - 1]) if first > 0 else None
    emphasised = np.empty_like(signal)
    emphasised[1:] = signal[1:] - PREEMPHASIS * signal[:-1]
    emphasised[0] = signal[0] if previous is None else signal[0] - PREEMPHASIS * previous
    features = python_speech_features.mfcc(emphasised, 16000, preemph=0)
    return features[: stop - start].T
