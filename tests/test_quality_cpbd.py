"""CPBD against a slow, literal rendering of the reference implementation's steps, and its invariants.

The ``cpbd`` package no longer imports (it needs ``scipy.ndimage.imread``), so the reference is written out
here from its published steps, pixel by pixel and block by block with plain loops, calling the same library
functions it calls (scikit-image's ``canny`` and ``HSOBEL_WEIGHTS``, SciPy's ``convolve``, NumPy's
``gradient``). Only :func:`literal_cpbd` may look like that: everything the package computes faster must
agree with it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import convolve
from skimage.feature import canny
from skimage.filters.edges import HSOBEL_WEIGHTS

from pytest_lipsync.quality.cpbd import cpbd, cpbd_gray, directions, edge_widths, grayscale, sobel_edges
from pytest_lipsync.synthetic.clips import face_frame


def literal_sobel_edges(image: np.ndarray) -> np.ndarray:
    kernel = np.array(HSOBEL_WEIGHTS, dtype=np.float64)
    kernel = kernel / np.sum(np.abs(kernel))
    strength = np.square(convolve(image, kernel.T))
    threshold = 2 * math.sqrt(np.mean(strength))
    strength[strength <= threshold] = 0
    height, width = strength.shape
    edges = np.zeros(strength.shape, dtype=bool)
    for row in range(height):
        for col in range(width):
            value = strength[row, col]
            left = strength[row, col - 1] if col > 0 else 0.0
            right = strength[row, col + 1] if col < width - 1 else 0.0
            up = strength[row - 1, col] if row > 0 else 0.0
            down = strength[row + 1, col] if row < height - 1 else 0.0
            edges[row, col] = (value > left and value > right) or (value > up and value > down)
    return edges


def walk(image: np.ndarray, row: int, start: int, step: int, keeps_going: Callable[[float], bool]) -> int:
    """Pixels from an edge to the extremum on one side: at most 101 comparisons of neighbours."""
    for margin in range(101):
        inner = start + step * margin
        outer = inner + step
        if not 0 <= outer < image.shape[1] or not keeps_going(image[row, outer] - image[row, inner]):
            return margin + 1
    return 101


def literal_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    gradient_y, gradient_x = np.gradient(image)
    height, width = image.shape
    angles = np.zeros(image.shape)
    for row in range(height):
        for col in range(width):
            if gradient_x[row, col] != 0:
                angles[row, col] = math.atan2(gradient_y[row, col], gradient_x[row, col]) * (180 / math.pi)
            elif gradient_y[row, col] == math.pi / 2:  # kept from the reference, though gradients are halves
                angles[row, col] = 90
    widths = np.zeros(image.shape)
    if not angles.any():
        return widths
    for row in range(1, height - 1):
        for col in range(1, width - 1):
            if not edges[row, col]:
                continue
            quantized = 45 * round(angles[row, col] / 45)
            if quantized == 0:  # intensity rising from left to right through the edge
                left = walk(image, row, col - 1, -1, lambda change: change < 0)
                right = walk(image, row, col + 1, +1, lambda change: change > 0)
            elif abs(quantized) == 180:  # falling
                left = walk(image, row, col - 1, -1, lambda change: change > 0)
                right = walk(image, row, col + 1, +1, lambda change: change < 0)
            else:
                continue
            widths[row, col] = left + right
    return widths


def literal_cpbd(gray: np.ndarray) -> float:
    image = gray.astype(np.float64)
    canny_edges = canny(image)
    widths = literal_widths(image, literal_sobel_edges(image))
    counts = [0] * 101
    total = 0
    for top in range(0, (image.shape[0] // 64) * 64, 64):
        for left in range(0, (image.shape[1] // 64) * 64, 64):
            block = (slice(top, top + 64), slice(left, left + 64))
            if np.count_nonzero(canny_edges[block]) <= 64 * 64 * 0.002:
                continue
            contrast = int(image[block].max() - image[block].min())
            jnb = 5.0 if contrast <= 50 else 3.0
            for value in widths[block].ravel():
                if value != 0:
                    probability = 1 - math.exp(-(abs(value / jnb) ** 3.6))
                    counts[round(probability * 100)] += 1
                    total += 1
    return sum(count / total for count in counts[:64]) if total else 0.0


def pillow_gray(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).convert("L"))


def natural_frame(height: int, width: int, seed: int) -> np.ndarray:
    """A talking-face frame with texture and soft edges: every branch of the width walk is taken."""
    rng = np.random.default_rng(seed)
    frame = cv2.resize(face_frame(96, 96, 0.4 + 0.1 * seed, seed), (width, height), interpolation=cv2.INTER_LINEAR)
    noise = rng.normal(0, 6, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def ramp_frame(height: int, width: int) -> np.ndarray:
    """A slow rise, a sharp step up, a slow fall: walks longer than the 101 steps the reference allows."""
    columns = np.arange(width)
    row = np.where(columns < 120, 10 + columns, 240 - (columns - 120))
    return np.repeat(np.repeat(row[None, :, None], height, 0), 3, 2).astype(np.uint8)


def staircase_frame(direction: int) -> np.ndarray:
    """Columns falling (-1) or rising (+1) from left to right, slowly, with three sharp steps, and every row
    alike: every gradient is horizontal, so every angle is 180 or 0. The reference measures no width at all
    when every angle is 0, sharp steps or not."""
    steps = -(np.arange(192) % 2)  # one level every other column
    for column in (48, 96, 144):
        steps[column - 1 : column + 2] -= (4, 20, 6)
    row = (240 if direction < 0 else 15) + direction * -np.cumsum(steps)
    return np.repeat(np.repeat(row[None, :, None], 64, 0), 3, 2).astype(np.uint8)


def boundary_frame() -> np.ndarray:
    """Blocks at the algorithm's thresholds on a flat background: a soft bar of contrast 51 (just noticeable
    width 3) and one of 50 (width 5), whose edges are 4 pixels wide, and a small patch with 10 Canny
    edge pixels (an edge block at 0.2% of 4096 pixels, not at 0.3%)."""
    gray = np.full((128, 192), 100, np.int64)
    for block, contrast in ((0, 51), (1, 50)):
        profile = np.interp(np.arange(64), [16, 20, 44, 48], [0, contrast, contrast, 0])
        gray[:64, 64 * block : 64 * block + 64] += np.round(profile).astype(np.int64)
    gray[20, 128 + 30 : 128 + 34] = 160
    return np.repeat(gray[..., None], 3, 2).astype(np.uint8)


FRAMES = {
    "face": lambda: natural_frame(128, 192, 1),
    "face-partial-blocks": lambda: natural_frame(150, 200, 2),
    "blurred-face": lambda: cv2.GaussianBlur(natural_frame(128, 128, 3), (0, 0), 2.5),
    "ramps": lambda: ramp_frame(64, 256),
    "noise": lambda: np.random.default_rng(5).integers(0, 256, (64, 128, 3), dtype=np.uint8),
    "falling-staircase": lambda: staircase_frame(-1),
    "rising-staircase": lambda: staircase_frame(+1),
    "boundaries": boundary_frame,
    "flat": lambda: np.full((64, 64, 3), 120, np.uint8),
}


@pytest.mark.parametrize("name", FRAMES)
def test_cpbd_equals_the_literal_algorithm(name: str) -> None:
    frame = FRAMES[name]()
    expected = literal_cpbd(pillow_gray(frame))
    got = cpbd(frame[None])
    assert got.dtype == np.float64 and got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("name", FRAMES)
def test_edges_and_widths_equal_the_literal_walks(name: str) -> None:
    """Widths saturate the probability of detection, so CPBD alone would not notice a wrong cut at 101."""
    image = pillow_gray(FRAMES[name]()).astype(np.float64)
    edges = sobel_edges(image)
    np.testing.assert_array_equal(edges, literal_sobel_edges(image))
    np.testing.assert_array_equal(edge_widths(image, edges), literal_widths(image, edges))


def test_the_test_frames_reach_every_branch() -> None:
    """The comparisons above only mean something if edges, both directions and long walks occur."""
    image = pillow_gray(FRAMES["ramps"]()).astype(np.float64)
    widths = literal_widths(image, literal_sobel_edges(image))
    assert widths.max() == 101 + 1  # one side cut at 101 steps, the other stops at once
    face = pillow_gray(FRAMES["face"]()).astype(np.float64)
    gradient_x = np.gradient(face)[1]
    measured = literal_widths(face, literal_sobel_edges(face)) != 0
    assert (gradient_x[measured] > 0).any() and (gradient_x[measured] < 0).any()
    assert 0 < literal_cpbd(pillow_gray(FRAMES["face"]())) < 1
    falling, rising = (pillow_gray(staircase_frame(direction)).astype(np.float64) for direction in (-1, +1))
    assert literal_widths(falling, literal_sobel_edges(falling)).any()
    assert literal_sobel_edges(rising).any() and not literal_widths(rising, literal_sobel_edges(rising)).any()


def test_a_batch_is_scored_frame_by_frame() -> None:
    frames = np.stack([natural_frame(64, 128, seed) for seed in range(3)])
    expected = [literal_cpbd(pillow_gray(frame)) for frame in frames]
    np.testing.assert_allclose(cpbd(frames), expected, rtol=1e-5)


def test_grayscale_is_pillows_luma() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    np.testing.assert_array_equal(grayscale(frames), np.stack([pillow_gray(frame) for frame in frames]))


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
def test_a_blurred_copy_scores_lower(sigma: float) -> None:
    sharp = natural_frame(192, 192, 7)
    blurred = cv2.GaussianBlur(sharp, (0, 0), sigma)
    sharp_value, blurred_value = cpbd(np.stack([sharp, blurred]))
    assert blurred_value < sharp_value


def test_an_image_smaller_than_a_block_is_refused() -> None:
    with pytest.raises(ValueError, match="63x80 images hold no 64x64 block"):
        cpbd_gray(np.zeros((80, 63), np.uint8))


@pytest.mark.parametrize(
    "frames",
    [np.zeros((1, 64, 64, 3), np.float32), np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 64, 4), np.uint8)],
    ids=["float", "single-frame", "rgba"],
)
def test_only_uint8_rgb_batches_are_accepted(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\) uint8 RGB batch"):
        cpbd(frames)


def test_importing_cpbd_loads_no_torch() -> None:
    code = "import sys, pytest_lipsync.quality.cpbd; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_directions_equal_the_rounded_angles_for_every_gradient_of_8_bit_levels() -> None:
    """Every central difference of 8-bit levels, halved (k / 2, |k| <= 255), in both axes: 261,121 pairs."""
    halves = np.arange(-255, 256) / 2
    gradient_x, gradient_y = (axis.ravel() for axis in np.meshgrid(halves, halves, indexing="ij"))
    angles = [math.atan2(gy, gx) * (180 / math.pi) if gx != 0 else 0.0 for gx, gy in zip(gradient_x, gradient_y)]
    quantized = 45 * np.round(np.array(angles) / 45)
    rising, falling = directions(gradient_x, gradient_y)
    np.testing.assert_array_equal(rising, quantized == 0)
    np.testing.assert_array_equal(falling, np.abs(quantized) == 180)
