"""The opt-in per-frame metrics of a run (LPIPS, CPBD) as the measures the quality passes call.

Each is a function of a (reference, generated) pair of uint8 RGB batches; CPBD reads the generated side only,
so it also runs where there is no reference. LPIPS runs on the device its model was loaded on, a batch of
pairs per forward pass; CPBD is NumPy on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.quality.accumulate import Measure

if TYPE_CHECKING:
    from pytest_lipsync.models.resolve import ResolvedWeights
    from pytest_lipsync.quality.settings import LpipsNet


def cpbd_measure(reference: np.ndarray | None, generated: np.ndarray) -> np.ndarray:
    """CPBD of each generated frame (docs/quality.md): no reference needed."""
    from pytest_lipsync.quality.cpbd import cpbd

    return cpbd(generated)


def lpips_measure(net: LpipsNet, trunk: ResolvedWeights, heads: ResolvedWeights, device: str) -> Measure:
    """LPIPS of each pair, with the network loaded once, here, on ``device``."""
    from pytest_lipsync.quality.lpips import load_lpips, lpips

    model = load_lpips(net, trunk, heads, device)

    def measure(reference: np.ndarray | None, generated: np.ndarray) -> np.ndarray:
        if reference is None:
            raise ValueError("LPIPS compares with ground truth, and none was given")
        return lpips(reference, generated, model)

    return measure
