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
8 bits.

The reference loops over every pixel in Python; here every step beyond the two library calls (Canny, the
Sobel convolution) works on the Sobel edges alone, found among the pixels above the threshold: their angle
class from the integer differences of their neighbours (:func:`directions`), their walks from a running count
of where each row's rising or falling steps break (:func:`_walks`, the same pixels in the same order as the
reference's loops, so the same integer widths), their probabilities looked up per (block class, width), as
every width is a whole number from 2 to 202. Every comparison is between integers or integer-valued floats,
and the rounded percentages sit at least 0.019 from a rounding boundary for every possible width, so no
last-bit difference of a maths library moves a value. The result equals the reference's float for float.
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
    luma = frames[..., 0] * _LUMA_16[0]
    for channel in (1, 2):
        luma += frames[..., channel] * _LUMA_16[channel]
    luma += 32768
    luma >>= 16
    return luma.astype(np.uint8)


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
    rows, columns = _sobel_edge_points(values)
    inside = (rows > 0) & (rows < height - 1) & (columns > 0) & (columns < width - 1)
    rows, columns = rows[inside], columns[inside]
    widths = _widths_at(image, rows * width + columns)
    return _sharpness(image, canny(values), rows, columns, widths)


def sobel_edges(image: np.ndarray) -> np.ndarray:
    """Thinned horizontal-gradient Sobel edges (boolean), as the reference's Octave-style ``sobel``."""
    edges = np.zeros(image.shape, dtype=bool)
    edges[_sobel_edge_points(image)] = True
    return edges


def _sobel_edge_points(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of :func:`sobel_edges`, looked for among the pixels above the threshold only.

    The reference zeroes the strengths at most the threshold, then keeps a pixel that exceeds both
    horizontal or both vertical neighbours (zero outside the image). Only a pixel above the threshold can
    (it must exceed a non-negative value), and for such a pixel the zeroing changes no comparison: a
    neighbour at most the threshold is exceeded before and after. So the comparisons run on the strengths
    as they are, zero-padded, at those pixels only.
    """
    from scipy.ndimage import convolve

    strength = np.square(convolve(image, SOBEL_KERNEL))
    threshold = 2 * np.sqrt(np.mean(strength))
    padded = np.pad(strength, 1)
    stride = padded.shape[1]
    flat = padded.ravel()
    index = np.flatnonzero(flat > threshold)
    value = flat[index]
    across = (value > flat[index - 1]) & (value > flat[index + 1])
    along = (value > flat[index - stride]) & (value > flat[index + stride])
    rows, columns = np.divmod(index[across | along], stride)
    return rows - 1, columns - 1


def edge_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano widths at the horizontal-gradient edges off the border, 0 elsewhere (module docstring)."""
    inner = np.zeros(edges.shape, dtype=bool)
    inner[1:-1, 1:-1] = edges[1:-1, 1:-1]
    index = np.flatnonzero(inner)
    widths = np.zeros(image.size)
    widths[index] = _widths_at(image.astype(np.uint8), index)
    return widths.reshape(image.shape)


def _widths_at(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Step 2 at the edges off the border of a uint8 image, given by flat index: their widths (0: none measured).

    Inside the image ``np.gradient`` takes halved central differences; only their signs and ratio matter
    here, so the differences themselves are taken, in integers, at the edges only.
    """
    width = image.shape[1]
    levels = image.astype(np.int16).ravel()
    along_x = levels[index + 1] - levels[index - 1]
    along_y = levels[index + width] - levels[index - width]
    widths = np.zeros(len(index), dtype=np.int64)
    # The reference measures nothing if no angle of the image is non-zero; an edge's angle settles it as a rule.
    if not (_angled(along_x, along_y).any() or _angled(*np.gradient(image.astype(np.float64))[::-1]).any()):
        return widths
    for picked, stops in zip(directions(along_x, along_y), (np.less_equal, np.greater_equal), strict=True):
        if picked.any():
            widths[picked] = _walks(image, stops, index[picked])
    return widths


def directions(gradient_x: np.ndarray, gradient_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the reference's angle rounds to 0 (rising) and to +-180 (falling), from gradients of 8-bit levels.

    The reference rounds ``atan2(gy, gx)`` in degrees (0 where ``gx == 0``) to a multiple of 45: 0 exactly
    when ``|gy| <= tan(22.5) gx``, or ``gx == 0``, and +-180 when ``|gy| <= tan(22.5) |gx|`` with ``gx < 0``.
    The gradients are halved differences of levels (or the differences: the rule reads signs and ratios
    only), so ``|gy / gx|`` is a ratio of whole numbers up to 255, never nearer than 3e-5 (relative) to
    ``tan(22.5)``, which is irrational: the comparison decides as the rounded float angle does, with no
    arctangent.
    """
    bound = np.tan(np.pi / 8) * np.abs(gradient_x)
    near_horizontal = np.abs(gradient_y) <= bound
    return (gradient_x == 0) | ((gradient_x > 0) & near_horizontal), (gradient_x < 0) & near_horizontal


def _angled(gradient_x: np.ndarray, gradient_y: np.ndarray) -> np.ndarray:
    """Where ``atan2(gy, gx)`` is non-zero, the angle taken as 0 where ``gx == 0``: all but ``gy == 0 <= gx``."""
    return (gradient_x != 0) & ((gradient_y != 0) | (gradient_x < 0))


def _walks(image: np.ndarray, stops: np.ufunc, index: np.ndarray) -> np.ndarray:
    """Widths at the edges ``index`` (flat, off the border) walked while ``not stops(next, this)``.

    Step ``p`` (flat) goes from pixel ``p`` to ``p + 1``; it breaks the walk where ``stops`` holds, and at the
    last column of a row, so no walk leaves its row. Walking left from the edge at ``p`` takes steps ``p - 2,
    p - 3, ...``, right ``p + 1, p + 2, ...``: each side counts its unbroken steps, at most 100, plus one (the
    reference's ``margin + 1``). A running count of the breaks finds the nearest one on either side.
    """
    grid = np.ones(image.shape, dtype=bool)
    stops(image[:, 1:], image[:, :-1], out=grid[:, :-1])
    breaks = grid.ravel()
    before = np.cumsum(breaks, dtype=np.int32)  # breaks at or before each step
    where = np.flatnonzero(breaks)
    left_step, right_step = index - 2, index + 1
    left = left_step - where[before[left_step] - 1]
    right = where[before[right_step] - breaks[right_step]] - right_step
    return np.minimum(left, MAX_STEPS) + np.minimum(right, MAX_STEPS) + 2


def _percent_bins() -> np.ndarray:
    """Step 4's whole percent for (block class, width): class 0 (not an edge block) and width 0 (none measured)
    go to the bin past 100, which is not counted; classes 1 and 2 have the just noticeable widths 5 and 3."""
    widths = np.arange(2 * (MAX_STEPS + 1) + 1, dtype=np.float64)
    bins = np.full((3, len(widths)), 101)
    for block_class, jnb in ((1, JNB_LOW_CONTRAST), (2, JNB_HIGH_CONTRAST)):
        probabilities = 1 - np.exp(-(np.abs(widths[1:] / jnb) ** BETA))
        bins[block_class, 1:] = np.round(probabilities * 100).astype(int)
    return bins


_PERCENT_BINS = _percent_bins()


def _sharpness(
    image: np.ndarray, edges: np.ndarray, rows: np.ndarray, columns: np.ndarray, widths: np.ndarray
) -> float:
    """Steps 3 and 4: the share of edges of edge blocks whose probability of blur detection is at most 63%.

    ``edges``: Canny's; the measured edges at (``rows``, ``columns``) with their ``widths`` (0: not measured).
    Every width is a whole number from 0 to 202, so its percent in each kind of block is looked up.
    """
    block_rows, block_columns = image.shape[0] // BLOCK, image.shape[1] // BLOCK

    def blocks(values: np.ndarray) -> np.ndarray:
        """(block rows, BLOCK, block columns, BLOCK): the whole blocks."""
        return values[: block_rows * BLOCK, : block_columns * BLOCK].reshape(block_rows, BLOCK, block_columns, BLOCK)

    # Each block's class (0: not an edge block, 1: contrast at most 50, 2: above), and class 0 for the pixels
    # of the partial blocks at the right and bottom, which the reference leaves out.
    classes = np.zeros((block_rows + 1, block_columns + 1), dtype=np.intp)
    edge_block = np.count_nonzero(blocks(edges), axis=(1, 3)) > BLOCK * BLOCK * THRESHOLD
    pixels = blocks(image)
    contrast = pixels.max(axis=(1, 3)).astype(int) - pixels.min(axis=(1, 3))
    classes[:-1, :-1] = np.where(edge_block, np.where(contrast <= CONTRAST_LIMIT, 1, 2), 0)
    block_row = np.minimum(rows // BLOCK, block_rows)
    block_column = np.minimum(columns // BLOCK, block_columns)
    counts = np.bincount(_PERCENT_BINS[classes[block_row, block_column], widths], minlength=102)[:101]
    total = counts.sum()
    if not total:
        return 0.0
    histogram = counts / total
    return float(np.sum(histogram[: UNNOTICED_PERCENT + 1]))
