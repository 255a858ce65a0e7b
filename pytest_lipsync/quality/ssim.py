"""SSIM per frame, equal to ``skimage.metrics.structural_similarity(gt, gen, channel_axis=-1, data_range=255)``.

scikit-image computes, per channel, the local means ``ux, uy`` and moments ``uxx, uyy, uxy`` with a
window filter, then ``S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`` with
``v = cov_norm * (u.. - u. u.)``, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, crops ``(win - 1) // 2`` pixels
from every edge and averages; the frame's value is the mean over channels. The windows:

- ``uniform7`` (its default): 7x7 mean filter, ``cov_norm = 49 / 48`` (sample covariance);
- ``gaussian11`` (Wang et al. 2004, its ``gaussian_weights=True, use_sample_covariance=False``): the
  11-tap Gaussian of sigma 1.5 that ``scipy.ndimage`` builds with ``truncate = 3.5``, ``cov_norm = 1``.

The crop removes exactly the pixels whose window reaches past the frame, so the border mode of the filters
never matters; that lets the CPU path work in strips of rows that stay in cache, and the torch path use
unpadded ("valid") convolutions.

Two CPU paths. The default (``uniform7`` on RGB) works on exact integer window sums: with 8-bit values every
sum, and every combination the formula needs once multiplied through by ``N^2`` and ``N (N - 1)``
(``N = 49``), is an integer below 2^31, so it runs in int32 and only the final ratio is float64. The other
variants filter float64 planes (``cv2.boxFilter`` or ``cv2.sepFilter2D``) and apply scikit-image's formula.
Both agree with scikit-image to about 1e-14.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from pytest_lipsync.quality.color import check_pair, float_planes, float_planes_torch

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.quality.settings import Color, SsimWindow

DATA_RANGE = 255.0
C1 = (0.01 * DATA_RANGE) ** 2
C2 = (0.03 * DATA_RANGE) ** 2

# Values (rows x width x channels) per strip: about 1 MiB of float64, so a strip's dozen temporaries
# stay in the caches instead of streaming whole 1080p planes through memory.
_STRIP_VALUES = 1 << 17

Moments = TypeVar("Moments", np.ndarray, "torch.Tensor")


@dataclass(frozen=True)
class Window:
    """A separable window: its 1-D kernel (normalised) and whether covariances use N - 1."""

    kernel: tuple[float, ...]
    sample_covariance: bool

    @property
    def size(self) -> int:
        return len(self.kernel)

    @property
    def radius(self) -> int:
        return (self.size - 1) // 2

    @property
    def uniform(self) -> bool:
        return len(set(self.kernel)) == 1

    @property
    def cov_norm(self) -> float:
        taps = self.size**2
        return taps / (taps - 1) if self.sample_covariance else 1.0


def _gaussian_kernel(sigma: float, truncate: float) -> tuple[float, ...]:
    """``scipy.ndimage``'s 1-D Gaussian, built the same way so the weights are the same floats."""
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 / sigma**2 * np.arange(-radius, radius + 1) ** 2)
    return tuple(float(tap) for tap in taps / taps.sum())


WINDOWS: dict[str, Window] = {
    "uniform7": Window(kernel=(1 / 7,) * 7, sample_covariance=True),
    "gaussian11": Window(kernel=_gaussian_kernel(sigma=1.5, truncate=3.5), sample_covariance=False),
}


def ssim(gt: np.ndarray, gen: np.ndarray, *, window: SsimWindow = "uniform7", color: Color = "rgb") -> np.ndarray:
    """Per-frame SSIM (float64) of two (B, H, W, 3) uint8 RGB batches, on the CPU."""
    check_pair(gt, gen, np.uint8)
    spec = WINDOWS[window]
    _check_extent(gt.shape[1:3], spec)
    if window == "uniform7" and color == "rgb":
        return np.array([_uniform7_rgb(reference, generated) for reference, generated in zip(gt, gen)])
    return np.array([_filtered(reference, generated, spec, color) for reference, generated in zip(gt, gen)])


def ssim_torch(
    gt: torch.Tensor, gen: torch.Tensor, *, window: SsimWindow = "uniform7", color: Color = "rgb"
) -> torch.Tensor:
    """The same on torch tensors (any device): float64 valid convolutions, one batch at a time."""
    import torch
    import torch.nn.functional as F

    check_pair(gt, gen, torch.uint8)
    spec = WINDOWS[window]
    _check_extent(tuple(gt.shape[1:3]), spec)
    x, y = float_planes_torch(gt, color), float_planes_torch(gen, color)
    kernel = torch.tensor(spec.kernel, dtype=torch.float64, device=x.device)
    columns, rows = kernel.view(1, 1, -1, 1), kernel.view(1, 1, 1, -1)

    def window_mean(planes: torch.Tensor) -> torch.Tensor:
        flat = planes.reshape(-1, 1, *planes.shape[2:])
        filtered = F.conv2d(F.conv2d(flat, columns), rows)
        return filtered.reshape(*planes.shape[:2], *filtered.shape[2:])

    moments = (window_mean(x), window_mean(y), window_mean(x * x + y * y), window_mean(x * y))
    return ssim_map(*moments, cov_norm=spec.cov_norm).mean(dim=(1, 2, 3))


def ssim_map(ux: Moments, uy: Moments, uxx_yy: Moments, uxy: Moments, *, cov_norm: float) -> Moments:
    """scikit-image's SSIM map from the window moments, computed in place: the arguments are consumed.

    The variances only ever appear as ``vx + vy``, so one filter of ``x^2 + y^2`` (``uxx_yy``) replaces two
    (four filters per frame instead of scikit-image's five). Augmented assignments work in place on NumPy
    arrays and torch tensors alike, and save a dozen frame-sized allocations per call.
    """
    numerator = ux * uy
    ux *= ux
    uy *= uy
    means_squared = ux
    means_squared += uy
    variances = uxx_yy
    variances -= means_squared
    variances *= cov_norm
    variances += C2
    covariance = uxy
    covariance -= numerator
    covariance *= 2 * cov_norm
    covariance += C2
    numerator *= 2
    numerator += C1
    numerator *= covariance
    means_squared += C1
    means_squared *= variances
    numerator /= means_squared
    return numerator


def _check_extent(size: tuple[int, ...], window: Window) -> None:
    height, width = size
    if min(height, width) < window.size:
        raise ValueError(f"{width}x{height} frames are smaller than the {window.size}x{window.size} SSIM window")


def _strips(frame: np.ndarray, radius: int) -> Iterator[slice]:
    """Row ranges that overlap by ``2 * radius``, so their cropped outputs tile the cropped frame.

    At least ``8 * radius`` rows each, so that the overlap filtered twice stays under a quarter.
    """
    height, width = frame.shape[:2]
    rows = max(8 * radius, _STRIP_VALUES // (width * frame.shape[2]))
    for start in range(0, height - 2 * radius, rows):
        yield slice(start, start + rows + 2 * radius)


def _cropped_count(frame: np.ndarray, radius: int, channels: int) -> int:
    height, width = frame.shape[:2]
    return (height - 2 * radius) * (width - 2 * radius) * channels


def _filtered(gt: np.ndarray, gen: np.ndarray, window: Window, color: Color) -> float:
    """SSIM of one frame with float64 moments from OpenCV's filters, strip by strip."""
    import cv2

    kernel = np.asarray(window.kernel)
    radius = window.radius

    def window_mean(planes: np.ndarray) -> np.ndarray:
        if window.uniform:  # a running-sum box filter: half the work of a 7-tap separable one
            return cv2.boxFilter(planes, cv2.CV_64F, (window.size, window.size), borderType=cv2.BORDER_REFLECT)
        return cv2.sepFilter2D(planes, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)

    total = 0.0
    for rows in _strips(gt, radius):
        x, y = float_planes(gt[rows], color), float_planes(gen[rows], color)
        moments = (window_mean(x), window_mean(y), window_mean(x * x + y * y), window_mean(x * y))
        total += float(ssim_map(*moments, cov_norm=window.cov_norm)[radius:-radius, radius:-radius].sum())
    return total / _cropped_count(gt, radius, 1 if color == "y" else 3)


def _uniform7_rgb(gt: np.ndarray, gen: np.ndarray) -> float:
    """SSIM of one uint8 RGB frame with the 7x7 mean window, from exact integer window sums."""
    total = sum(_uniform7_strip(gt[rows], gen[rows]) for rows in _strips(gt, 3))
    return total / _cropped_count(gt, 3, 3)


def _uniform7_strip(x: np.ndarray, y: np.ndarray) -> float:
    """Sum of the cropped SSIM map of one strip.

    With window sums Sx, Sy, Sxx + Syy, Sxy over N = 49 pixels, scikit-image's map is
    4 (P + C1 N^2 / 2)(N Sxy - P + C2 N (N - 1) / 2) / ((Q + C1 N^2)(N (Sxx + Syy) - Q + C2 N (N - 1)))
    with P = Sx Sy and Q = Sx^2 + Sy^2; every integer term is at most 49 * 2 * 49 * 255^2 < 2^31.
    """
    import cv2

    n = 49

    def window_sum(values: np.ndarray) -> np.ndarray:
        summed = cv2.boxFilter(values, cv2.CV_32S, (7, 7), normalize=False, borderType=cv2.BORDER_REFLECT)
        return summed[3:-3, 3:-3]

    sum_x, sum_y = window_sum(x), window_sum(y)
    sum_xy = window_sum(np.multiply(x, y, dtype=np.uint16))
    sum_squares = window_sum(np.square(x, dtype=np.int32) + np.square(y, dtype=np.int32))
    product = sum_x * sum_y
    sum_x *= sum_x
    sum_x += sum_y * sum_y
    squares_of_sums = sum_x
    sum_squares *= n
    sum_squares -= squares_of_sums
    sum_xy *= n
    sum_xy -= product
    numerator = np.add(product, C1 * n * n / 2, dtype=np.float64)
    numerator *= np.add(sum_xy, C2 * n * (n - 1) / 2, dtype=np.float64)
    denominator = np.add(squares_of_sums, C1 * n * n, dtype=np.float64)
    denominator *= np.add(sum_squares, C2 * n * (n - 1), dtype=np.float64)
    numerator /= denominator
    return 4 * float(numerator.sum())
