"""Whether a generated video and its ground truth can be compared frame by frame, as pure rules.

Both videos are decoded by the same 25 fps path, so frame i of one is compared with frame i of the other.
Sizes must agree (or the reference is resized on request: ``cv2.INTER_AREA``, the interpolation that
averages instead of aliasing when it shrinks). Lengths may differ by a few frames, as encoders and the
25 fps conversion drop or repeat one at the ends; then the common prefix is compared and the difference
recorded. Anything more means the pair is wrong, and guessing an alignment would produce confident
nonsense, so it is an error that gives both numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_lipsync.errors import ReferenceMismatchError


@dataclass(frozen=True)
class LengthAlignment:
    """The two lengths in 25 fps frames; the first ``compared`` frames of each are compared."""

    generated_frames: int
    reference_frames: int

    @property
    def compared(self) -> int:
        return min(self.generated_frames, self.reference_frames)

    @property
    def mismatch(self) -> int:
        """Generated minus reference: positive when the generated video is longer."""
        return self.generated_frames - self.reference_frames


def align_lengths(
    generated_frames: int,
    reference_frames: int,
    max_length_mismatch: int,
    *,
    video: Path | None = None,
    reference: Path | None = None,
) -> LengthAlignment:
    """Accept lengths that differ by at most ``max_length_mismatch`` frames, with frames to compare."""
    lengths = LengthAlignment(generated_frames, reference_frames)
    facts = {"generated_frames": generated_frames, "reference_frames": reference_frames, "reference": _name(reference)}
    if abs(lengths.mismatch) > max_length_mismatch:
        raise ReferenceMismatchError(
            f"has {generated_frames} frames at 25 fps but its reference {_name(reference)} has {reference_frames}: "
            f"{abs(lengths.mismatch)} apart, more than max_length_mismatch = {max_length_mismatch}",
            path=video,
            hint="Check that the reference is this video's ground truth, or raise max_length_mismatch",
            facts=facts,
        )
    if lengths.compared == 0:
        raise ReferenceMismatchError(
            f"has {generated_frames} frames and its reference {_name(reference)} has {reference_frames}: "
            "there is no frame to compare",
            path=video,
            facts=facts,
        )
    return lengths


def needs_resize(
    generated_size: tuple[int, int],
    reference_size: tuple[int, int],
    resize_reference: bool,
    *,
    video: Path | None = None,
    reference: Path | None = None,
) -> bool:
    """Whether the reference frames, of (width, height) ``reference_size``, must be resized first."""
    if generated_size == reference_size:
        return False
    if resize_reference:
        return True
    raise ReferenceMismatchError(
        f"is {_size(generated_size)} but its reference {_name(reference)} is {_size(reference_size)}",
        path=video,
        hint="Compare with ground truth of the same size, or set resize_reference = true to resize the "
        "reference to the generated size (area interpolation)",
        facts={
            "generated_size": list(generated_size),
            "reference_size": list(reference_size),
            "reference": _name(reference),
        },
    )


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (B, h, w, 3) uint8 batch resized to (width, height) ``size`` with ``cv2.INTER_AREA``."""
    import cv2

    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _name(path: Path | None) -> str:
    return "(unnamed)" if path is None else str(path)
