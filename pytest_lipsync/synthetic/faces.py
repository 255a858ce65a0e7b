"""Deterministic stand-ins for face detection: S3FD weights in the released format, and a marker detector.

**Marker convention** (for clip generators): a "face" is a blob of the marker colour, pure magenta
``(255, 0, 255)``, which is the same triple in RGB and BGR, so channel order cannot go wrong. Draw a filled
shape or just an outline (an ellipse ring, say, with a talking mouth inside): the detected box is the
bounding box of each 8-connected blob, in pixel edges (a blob covering columns 10..19 gives x1 = 10,
x2 = 20), score 1.0. Lossy codecs smear the colour, so a pixel counts as marker when R >= 160, B >= 160 and
G <= 96, and blobs smaller than ``MIN_BLOB_PIXELS`` are ignored. Keep other content away from magenta and
keep distinct faces apart (a gap of a few pixels survives chroma subsampling). Boxes come sorted by top
edge, then left edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MARKER_RGB = (255, 0, 255)
MIN_BLOB_PIXELS = 16
_MARKER_MIN_RB = 160
_MARKER_MAX_G = 96

# Gains of the stand-in initialisation (std = sqrt(gain / fan_in)): He for the trunk so activations keep
# their scale through 15 convolutions, a small one for the box offsets so boxes stay near their priors, and
# one for the class heads that spreads face scores over (0, 1), with some saturated at exactly 1.0.
_TRUNK_GAIN = 2.0
_LOC_GAIN = 0.02
_CONF_GAIN = 2.0
_L2NORM_SCALES = {"L2Norm3_3": 10.0, "L2Norm4_3": 8.0, "L2Norm5_3": 5.0}


def standin_s3fd_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random S3FD weights with the released keys and shapes, identical for a given seed on any machine.

    They detect nothing meaningful; they exercise loading, shapes and the post-processing arithmetic.
    """
    import torch

    from pytest_lipsync.faces.s3fd import S3FDNet

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, reference in S3FDNet().state_dict().items():
        module = key.split(".")[0]
        if module in _L2NORM_SCALES:
            state[key] = torch.full(reference.shape, _L2NORM_SCALES[module])
        elif key.endswith(".bias"):
            state[key] = torch.zeros(reference.shape)
        else:
            gain = {"loc": _LOC_GAIN, "conf": _CONF_GAIN}.get(module, _TRUNK_GAIN)
            fan_in = reference[0].numel()
            state[key] = torch.randn(reference.shape, generator=generator) * (gain / fan_in) ** 0.5
    return state


def marker_boxes(frame: np.ndarray) -> np.ndarray:
    """(K, 5) float64 boxes of the marker blobs of one RGB (or BGR) uint8 frame, see the module docstring."""
    import cv2

    r, g, b = (frame[..., k].astype(np.int16) for k in range(3))
    mask = ((r >= _MARKER_MIN_RB) & (b >= _MARKER_MIN_RB) & (g <= _MARKER_MAX_G)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    blobs = stats[1:count].tolist()
    boxes = [(x, y, x + w, y + h, 1.0) for x, y, w, h, area in blobs if area >= MIN_BLOB_PIXELS]
    boxes.sort(key=lambda box: (box[1], box[0]))
    return np.array(boxes, dtype=np.float64).reshape(-1, 5)


class MarkerDetector:
    """A detector plug-in (``pytest_lipsync.synthetic.faces:marker_detector``) that finds magenta blobs."""

    def detect(self, frames: np.ndarray, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        return [marker_boxes(frame) for frame in frames]


def marker_detector() -> MarkerDetector:
    """Factory named in ``detector = "pytest_lipsync.synthetic.faces:marker_detector"``."""
    return MarkerDetector()
