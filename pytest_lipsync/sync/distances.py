"""The offset search and the LSE numbers (docs/protocol.md), vectorised over windows.

Kept in float32 torch like the reference (``pairwise_distance`` with its 1e-6 added to the difference,
zero-padded audio embeddings), so that the numbers agree with it to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pytest_lipsync.results import BoxStats, TrackScore
from pytest_lipsync.sync.filters import medfilt

VSHIFT = 15
CONFIDENCE_KERNEL = 9


@dataclass(frozen=True)
class SyncCurve:
    """What one track's embeddings say: the per-offset curve and the numbers read off it."""

    lse_d: float
    lse_c: float
    offset: int
    mean_dist: tuple[float, ...]
    frame_confidence: tuple[float, ...]

    def track_score(self, start_frame: int, end_frame: int, windows: int, boxes: BoxStats | None = None) -> TrackScore:
        """The result record of the track this curve was computed for."""
        return TrackScore(
            start_frame=start_frame,
            end_frame=end_frame,
            windows=windows,
            lse_d=self.lse_d,
            lse_c=self.lse_c,
            offset=self.offset,
            mean_dist=self.mean_dist,
            frame_confidence=self.frame_confidence,
            boxes=boxes,
        )


def offset_distances(lip: torch.Tensor, audio: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(N, 2*vshift+1): d[i, k] = || lip[i] - audio_padded[i + k] + 1e-6 ||."""
    count = lip.shape[0]
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    return torch.stack(
        [torch.nn.functional.pairwise_distance(lip, padded[k : k + count]) for k in range(2 * vshift + 1)],
        dim=1,
    )


def sync_curve(distances: torch.Tensor, vshift: int = VSHIFT) -> SyncCurve:
    mean_dist = distances.mean(dim=0)
    best = int(np.argmin(mean_dist.numpy()))  # first minimum, like torch.min
    minimum = mean_dist[best]
    median = torch.median(mean_dist)
    confidence = (median - distances[:, best]).numpy()
    return SyncCurve(
        lse_d=float(minimum),
        lse_c=float(median - minimum),
        offset=vshift - best,
        mean_dist=tuple(float(v) for v in mean_dist),
        frame_confidence=tuple(float(v) for v in medfilt(confidence, CONFIDENCE_KERNEL)),
    )
