"""CPBD, a no-reference sharpness measure, equal to the ``cpbd`` package (Narvekar & Karam 2011).

"A No-Reference Image Blur Metric Based on the Cumulative Probability of Blur Detection" estimates how
likely a viewer is to notice blur at the edges of a picture. The reference implementation (``cpbd.compute``)
reads an 8-bit grayscale image as float64 and, step by step:

1. **Edges.** ``skimage.feature.canny`` with its defaults marks the edges that decide which blocks count.
   A Sobel operator decides where widths are measured: the image convolved (``scipy.ndimage.convolve``,
   ``reflect`` borders) with the horizontal-gradient kernel ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]] / 8``
   (scikit-image's ``HSOBEL_WEIGHTS`` transposed and scaled to absolute sum 1), squared; values at most
   ``2 sqrt(mean)`` set to 0; a pixel is an edge where it is above both horizontal or both vertical
   neighbours (zero outside the image).
2. **Widths** (Marziliano's method). The gradient angle ``atan2(gy, gx)`` in degrees from ``np.gradient``,
   taken as 0 where ``gx == 0``, rounded to a multiple of 45. At each Sobel edge off the image border whose
   angle is 0 or +-180 (a horizontal gradient), the width is the number of pixels to the local extrema
   on either side along the row: the walk continues while the intensity keeps rising (angle 0) or falling
   (+-180) away from the edge, at most 101 steps a side. If no angle at all is non-zero, no width is measured.
3. **Blocks.** The image is cut into whole 64x64 blocks (a partial block at the right or bottom is left out).
   A block whose Canny edges exceed 0.2% of its pixels is an edge block; its contrast ``int(max - min)``
   selects the just noticeable blur width, 5 for a contrast of at most 50 and 3 above.
4. **Probability.** At each measured edge of an edge block, ``P = 1 - exp(-(width / jnb) ^ 3.6)``; the
   probabilities are rounded to whole percents into a histogram, normalised by the number of edges, and
   CPBD is its mass at 63% and below: the share of edges whose blur goes unnoticed. Higher is sharper,
   between 0 and 1; an image without measured edges gives 0.

Frames are RGB, so each is first made grayscale the way the reference's command line reads images
(Pillow's ``convert("L")``): ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, the BT.601 luma rounded to
8 bits. The walks of step 2 run as vectorised run lengths of rising and falling steps along each row,
which visit the same pixels in the same order as the reference's loops, so the widths are the same
integers; every comparison is between integers or integer-valued floats, and the rounded percentages sit at
least 0.019 from a rounding boundary for every possible width, so no last-bit difference of a maths
library moves a value. The result equals the reference's float for float.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.002
BETA = 3.6
BLOCK = 64
CONTRAST_LIMIT = 50  # at most this contrast, the just noticeable width is 5, else 3
JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST = 5.0, 3.0
MAX_STEPS = 100  # a walk stops after 101 steps: widths are at most 101 per side
UNNOTICED_PERCENT = 63  # CPBD: the histogram's mass at 0 ... 63 percent
SOBEL_KERNEL = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8
_LUMA_16 = np.array([19595, 38470, 7471], dtype=np.uint32)  # sums to 65536


def grayscale(frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> (B, H, W) uint8 luma, equal to Pillow's ``convert("L")``."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be a (B, H, W, 3) uint8 RGB batch, got {frames.dtype} {frames.shape}")
    return ((frames @ _LUMA_16 + 32768) >> 16).astype(np.uint8)


def cpbd(frames: np.ndarray) -> np.ndarray:
    """Per-frame CPBD (float64) of a (B, H, W, 3) uint8 RGB batch."""
    return np.array([cpbd_gray(image) for image in grayscale(frames)], dtype=np.float64)


def cpbd_gray(image: np.ndarray) -> float:
    """CPBD of one (H, W) uint8 grayscale image, at least one 64x64 block in size."""
    from skimage.feature import canny

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"the image must be (H, W) uint8 grayscale, got {image.dtype} {image.shape}")
    height, width = image.shape
    if height < BLOCK or width < BLOCK:
        raise ValueError(f"{width}x{height} images hold no {BLOCK}x{BLOCK} block for CPBD")
    values = image.astype(np.float64)
    widths = edge_widths(values, sobel_edges(values))
    return _sharpness(values, canny(values), widths)


def sobel_edges(image: np.ndarray) -> np.ndarray:
    """Thinned horizontal-gradient Sobel edges (boolean), as the reference's Octave-style ``sobel``."""
    from scipy.ndimage import convolve

    strength = np.square(convolve(image, SOBEL_KERNEL))
    strength[strength <= 2 * np.sqrt(np.mean(strength))] = 0
    padded = np.pad(strength, 1)
    centre = padded[1:-1, 1:-1]
    across = (centre > padded[1:-1, :-2]) & (centre > padded[1:-1, 2:])
    along = (centre > padded[:-2, 1:-1]) & (centre > padded[2:, 1:-1])
    return across | along


def edge_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano widths at the horizontal-gradient edges off the border, 0 elsewhere (module docstring)."""
    widths = np.zeros(image.shape)
    gradient_y, gradient_x = np.gradient(image)
    # The reference measures nothing if every angle is 0: atan2(gy, gx) is 0 only for gy == 0 < gx, and the
    # angle is taken as 0 where gx == 0. Only the edges' angles are needed beyond that.
    if not np.any((gradient_x != 0) & ((gradient_y != 0) | (gradient_x < 0))):
        return widths
    rows, columns = np.nonzero(edges[1:-1, 1:-1])
    rows, columns = rows + 1, columns + 1
    along_x, along_y = gradient_x[rows, columns], gradient_y[rows, columns]
    angles = np.where(along_x != 0, np.arctan2(along_y, along_x) * (180 / np.pi), 0.0)
    quantized = 45 * np.round(angles / 45)
    step = np.diff(image, axis=1)  # step[:, j] = image[:, j + 1] - image[:, j]
    last = step.shape[1] - 1
    for direction, steps in ((quantized == 0, step > 0), (np.abs(quantized) == 180, step < 0)):
        row, column = rows[direction], columns[direction]
        # Walking left from column c compares columns c - 2 - m and c - 1 - m: steps c - 2, c - 3, ...
        left = np.where(column >= 2, _runs_ending_at(steps)[row, np.maximum(column - 2, 0)], 0)
        # Walking right compares columns c + 1 + m and c + 2 + m: steps c + 1, c + 2, ...
        right = np.where(column + 1 <= last, _runs_starting_at(steps)[row, np.minimum(column + 1, last)], 0)
        widths[row, column] = np.minimum(left, MAX_STEPS) + np.minimum(right, MAX_STEPS) + 2
    return widths


def _runs_ending_at(flags: np.ndarray) -> np.ndarray:
    """For each position, how many consecutive True flags end there (looking left along the row)."""
    index = np.arange(flags.shape[1], dtype=np.int32)
    last_false = np.maximum.accumulate(np.where(flags, np.int32(-1), index), axis=1)
    return index - last_false


def _runs_starting_at(flags: np.ndarray) -> np.ndarray:
    """For each position, how many consecutive True flags start there (looking right along the row)."""
    return _runs_ending_at(flags[:, ::-1])[:, ::-1]


def _sharpness(image: np.ndarray, edges: np.ndarray, widths: np.ndarray) -> float:
    """Steps 3 and 4: the share of edges of edge blocks whose probability of blur detection is at most 63%."""
    rows, columns = image.shape[0] // BLOCK, image.shape[1] // BLOCK

    def blocks(values: np.ndarray) -> np.ndarray:
        """(rows, columns, BLOCK * BLOCK): the whole blocks, each flattened."""
        cropped = values[: rows * BLOCK, : columns * BLOCK]
        return cropped.reshape(rows, BLOCK, columns, BLOCK).swapaxes(1, 2).reshape(rows, columns, -1)

    edge_block = np.count_nonzero(blocks(edges), axis=2) > BLOCK * BLOCK * THRESHOLD
    pixels = blocks(image)
    contrast = (pixels.max(axis=2) - pixels.min(axis=2)).astype(int)
    jnb = np.where(contrast <= CONTRAST_LIMIT, JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST)
    block_widths = blocks(widths)
    measured = (block_widths != 0) & edge_block[..., None]
    ratios = block_widths / jnb[..., None]
    probabilities = 1 - np.exp(-(np.abs(ratios[measured]) ** BETA))
    if not len(probabilities):
        return 0.0
    histogram = np.bincount(np.round(probabilities * 100).astype(int), minlength=101) / len(probabilities)
    return float(np.sum(histogram[: UNNOTICED_PERCENT + 1]))
