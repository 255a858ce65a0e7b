"""Chunked MFCC columns equal python_speech_features on the whole track (to float64 rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import python_speech_features

from pytest_lipsync.sync.mfcc import mfcc_column_count, mfcc_columns


@pytest.mark.parametrize("length", [399, 400, 401, 560, 16000, 16000 * 3 + 77])
def test_column_count_matches_the_library(length: int) -> None:
    audio = np.random.default_rng(length).integers(-30000, 30000, length).astype(np.int16)
    assert mfcc_column_count(length) == len(python_speech_features.mfcc(audio, 16000))


@pytest.mark.parametrize("chunk", [20, 37, 500])
def test_chunks_equal_the_whole_track(chunk: int) -> None:
    audio = np.random.default_rng(1).integers(-32768, 32767, 16000 * 2 + 123).astype(np.int16)
    whole = python_speech_features.mfcc(audio, 16000).T
    total = mfcc_column_count(len(audio))
    pieces = [mfcc_columns(audio, start, start + chunk) for start in range(0, total, chunk)]
    # BLAS and the DCT may sum in another order for another number of rows: 1e-12, not bit identity.
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=1e-11, atol=1e-11)


def test_overlapping_ranges_agree() -> None:
    audio = np.random.default_rng(2).integers(-20000, 20000, 8000).astype(np.int16)
    np.testing.assert_allclose(mfcc_columns(audio, 10, 50)[:, 4:], mfcc_columns(audio, 14, 50), rtol=1e-11, atol=1e-11)
