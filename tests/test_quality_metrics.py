"""PSNR/SSIM against scikit-image itself, every variant, both backends; the infinite-PSNR policy."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import pytest_lipsync.quality.ssim as ssim_module
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.quality.accumulate import QualityAccumulator, compare_streams
from pytest_lipsync.quality.alignment import LengthAlignment
from pytest_lipsync.quality.psnr import PSNR_CAP_DB, psnr, psnr_torch
from pytest_lipsync.quality.settings import Color, QualitySettings, SsimWindow
from pytest_lipsync.quality.ssim import ssim, ssim_torch
from pytest_lipsync.synthetic.clips import ClipSpec, envelope, face_frame
from tests.conftest import MakeClip

WINDOWS: tuple[SsimWindow, ...] = ("uniform7", "gaussian11")
COLORS: tuple[Color, ...] = ("rgb", "y")

# scikit-image's own arguments for each window: what the variant names promise.
SKIMAGE_WINDOW_ARGS: dict[str, dict[str, object]] = {
    "uniform7": {},
    "gaussian11": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}


def literal_luma(frame: np.ndarray) -> np.ndarray:
    """The documented definition, written out: BT.601 weights on 0..255 values, float64, unrounded."""
    rgb = frame.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def skimage_values(gt: np.ndarray, gen: np.ndarray, window: str, color: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image called once per frame, as users do today."""
    psnrs, ssims = [], []
    for reference, generated in zip(gt, gen):
        if color == "y":
            reference, generated, channels = literal_luma(reference), literal_luma(generated), {}
        else:
            channels = {"channel_axis": -1}
        with np.errstate(divide="ignore"):
            psnrs.append(peak_signal_noise_ratio(reference, generated, data_range=255))
        ssims.append(
            structural_similarity(reference, generated, data_range=255, **channels, **SKIMAGE_WINDOW_ARGS[window])
        )
    return np.array(psnrs), np.array(ssims)


def opencv_values(gt: np.ndarray, gen: np.ndarray, window: SsimWindow, color: Color) -> tuple[np.ndarray, np.ndarray]:
    return psnr(gt, gen, color=color), ssim(gt, gen, window=window, color=color)


def torch_values(gt: np.ndarray, gen: np.ndarray, window: SsimWindow, color: Color) -> tuple[np.ndarray, np.ndarray]:
    gt_tensor, gen_tensor = torch.from_numpy(gt), torch.from_numpy(gen)
    return (
        psnr_torch(gt_tensor, gen_tensor, color=color).numpy(),
        ssim_torch(gt_tensor, gen_tensor, window=window, color=color).numpy(),
    )


BACKENDS: dict[str, Callable[[np.ndarray, np.ndarray, SsimWindow, Color], tuple[np.ndarray, np.ndarray]]] = {
    "opencv": opencv_values,
    "torch": torch_values,
}


def random_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)


def smooth_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth frames and a slightly noisy, shifted copy: the regime real comparisons live in (SSIM near 1)."""
    count, height, width, _ = shape
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([127 + 120 * np.sin(columns / 7 + phase + t) * np.cos(rows / 11 - t) for phase in (0, 2, 4)], -1)
        for t in range(count)
    ]
    gt = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    gen = np.clip(np.roll(gt, 1, axis=2) + rng.normal(0, 3, gt.shape), 0, 255).astype(np.uint8)
    return gt, gen


def identical_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    gt, _ = random_pair(shape, seed)
    return gt, gt.copy()


def extreme_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Saturated frames: the largest window sums, where an integer overflow would show."""
    gt = np.full(shape, 255, np.uint8)
    gen = np.where(np.random.default_rng(seed).random(shape) < 0.5, 0, 255).astype(np.uint8)
    gen[0] = 255
    return gt, gen


CONTENT = {"random": random_pair, "smooth": smooth_pair, "identical": identical_pair, "extreme": extreme_pair}


def assert_equal_to_skimage(gt: np.ndarray, gen: np.ndarray, window: SsimWindow, color: Color, backend: str) -> None:
    expected_psnr, expected_ssim = skimage_values(gt, gen, window, color)
    got_psnr, got_ssim = BACKENDS[backend](gt, gen, window, color)
    assert got_psnr.dtype == np.float64 and got_ssim.dtype == np.float64
    assert got_psnr.shape == got_ssim.shape == (len(gt),)
    np.testing.assert_array_equal(np.isinf(got_psnr), np.isinf(expected_psnr))
    finite = np.isfinite(expected_psnr)
    np.testing.assert_allclose(got_psnr[finite], expected_psnr[finite], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_ssim, expected_ssim, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("content", CONTENT)
@pytest.mark.parametrize("shape", [(2, 23, 37, 3), (1, 11, 12, 3), (2, 64, 97, 3)])
def test_equal_to_skimage(shape: tuple[int, ...], content: str, window: SsimWindow, color: Color, backend: str) -> None:
    gt, gen = CONTENT[content](shape, seed=sum(shape))
    assert_equal_to_skimage(gt, gen, window, color, backend)


@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("window", WINDOWS)
def test_strip_boundaries_do_not_change_the_result(
    window: SsimWindow, color: Color, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strips of the fewest rows (24 or 40), the last one ragged: every row of the map counted once."""
    monkeypatch.setattr(ssim_module, "_STRIP_VALUES", 1)
    gt, gen = smooth_pair((1, 113, 45, 3), seed=3)
    assert_equal_to_skimage(gt, gen, window, color, "opencv")


@pytest.mark.parametrize("window", WINDOWS)
def test_frames_of_exactly_the_window_size(window: SsimWindow) -> None:
    """The cropped map is a single pixel: the smallest frame scikit-image accepts."""
    size = 7 if window == "uniform7" else 11
    gt, gen = random_pair((2, size, size, 3), seed=5)
    for backend in BACKENDS:
        assert_equal_to_skimage(gt, gen, window, "rgb", backend)


def test_lip_sync_edit_on_generated_face_frames() -> None:
    """Ground truth and a re-dubbed copy that differs only in the mouth, as a lip-sync model produces."""
    original, redubbed = envelope(6, seed=0), envelope(6, seed=1)
    gt = np.stack([face_frame(96, 80, opening, index)[..., ::-1] for index, opening in enumerate(original)])
    gen = np.stack([face_frame(96, 80, opening, index)[..., ::-1] for index, opening in enumerate(redubbed)])
    for window in WINDOWS:
        for color in COLORS:
            assert_equal_to_skimage(gt, gen, window, color, "opencv")


def test_decoded_clips_through_the_stream(make_clip: MakeClip) -> None:
    """Two encoded clips, decoded by the 25 fps path in RGB and streamed in batches: still scikit-image's numbers."""
    from pytest_lipsync.media.decode import open_video

    spec = ClipSpec(seconds=0.6, width=64, height=48)
    paths = (
        make_clip("quality_gt.mp4", spec),
        make_clip("quality_gen.mp4", ClipSpec(seconds=0.6, width=64, height=48, seed=7)),
    )
    gt, gen = (np.concatenate(list(open_video(path).frames(batch_size=4, pix_fmt="rgb24"))) for path in paths)
    result = compare_streams(
        open_video(paths[1]).frames(batch_size=4, pix_fmt="rgb24"),
        open_video(paths[0]).frames(batch_size=5, pix_fmt="rgb24"),
        QualitySettings(),
    )
    expected_psnr, expected_ssim = skimage_values(gt, gen, "uniform7", "rgb")
    assert result.frames == len(gt) == 15
    np.testing.assert_allclose(result.psnr.values, expected_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.ssim.values, expected_ssim, rtol=0, atol=1e-6)


def test_summary_is_mean_and_minimum_of_the_series() -> None:
    gt, gen = smooth_pair((5, 24, 30, 3), seed=11)
    gen[3] = 255 - gt[3]  # one bad frame
    accumulator = QualityAccumulator(QualitySettings())
    accumulator.add(gt[:2], gen[:2])
    accumulator.add(gt[2:], gen[2:])
    result = accumulator.result(LengthAlignment(5, 5), resized_reference=False)
    expected_psnr, expected_ssim = skimage_values(gt, gen, "uniform7", "rgb")
    for series, expected in ((result.psnr, expected_psnr), (result.ssim, expected_ssim)):
        assert series.worst_frame == 3
        assert series.worst == series.values[3]
        assert series.mean == pytest.approx(float(np.mean(expected)), abs=1e-9)
        np.testing.assert_allclose(series.values, expected, rtol=0, atol=1e-6)
    assert result.identical_frames == 0


def test_identical_frames_are_capped_counted_and_standard_json() -> None:
    gt, gen = smooth_pair((4, 20, 20, 3), seed=2)
    gen[1], gen[2] = gt[1], gt[2]
    accumulator = QualityAccumulator(QualitySettings(ssim_window="gaussian11", color="y"))
    accumulator.add(gt, gen)
    result = accumulator.result(LengthAlignment(4, 4), resized_reference=False)
    expected_psnr, _ = skimage_values(gt, gen, "gaussian11", "y")
    assert np.isinf(expected_psnr[[1, 2]]).all() and np.isfinite(expected_psnr[[0, 3]]).all()
    assert result.identical_frames == 2
    assert result.psnr.values[1] == result.psnr.values[2] == PSNR_CAP_DB
    assert result.psnr.mean == pytest.approx((expected_psnr[0] + expected_psnr[3] + 2 * PSNR_CAP_DB) / 4, abs=1e-9)
    assert result.ssim.values[1] == pytest.approx(1.0, abs=1e-12)

    document = result.to_json()
    loaded = json.loads(json.dumps(document, allow_nan=False))
    assert loaded == document
    assert loaded["identical_frames"] == 2 and loaded["psnr_cap_db"] == PSNR_CAP_DB
    assert loaded["ssim_window"] == "gaussian11" and loaded["color"] == "y"
    assert loaded["psnr"]["per_frame"][1] == PSNR_CAP_DB
    assert loaded["psnr"]["worst"] == {"frame": int(np.argmin(expected_psnr)), "value": float(np.min(expected_psnr))}


def test_all_identical_video_is_a_finite_perfect_score() -> None:
    gt, _ = random_pair((3, 16, 16, 3), seed=4)
    accumulator = QualityAccumulator(QualitySettings())
    accumulator.add(gt, gt.copy())
    result = accumulator.result(LengthAlignment(3, 3), resized_reference=False)
    assert result.psnr.mean == result.psnr.worst == PSNR_CAP_DB and result.psnr.worst_frame == 0
    assert result.identical_frames == result.frames == 3
    assert result.ssim.mean == pytest.approx(1.0, abs=1e-12)
    assert all(
        math.isfinite(value) for value in json.loads(json.dumps(result.to_json(), allow_nan=False))["psnr"]["per_frame"]
    )


@pytest.mark.parametrize(
    ("gt", "gen", "error", "words"),
    [
        (np.zeros((1, 9, 9, 3), np.float32), np.zeros((1, 9, 9, 3), np.float32), TypeError, "uint8"),
        (np.zeros((1, 9, 9, 3), np.uint8), np.zeros((1, 9, 10, 3), np.uint8), ValueError, "(1, 9, 10, 3)"),
        (np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9, 3), np.uint8), ValueError, "(B, H, W, 3)"),
        (
            np.zeros((1, 6, 9, 3), np.uint8),
            np.zeros((1, 6, 9, 3), np.uint8),
            ValueError,
            "9x6 frames are smaller than the 7x7",
        ),
    ],
)
def test_bad_batches_are_refused(gt: np.ndarray, gen: np.ndarray, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=re.escape(words)):
        ssim(gt, gen)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"ssim_window": "gaussian7"}, 'ssim_window must be one of "uniform7", "gaussian11", not \'gaussian7\''),
        ({"color": "ycbcr"}, 'color must be one of "rgb", "y"'),
        ({"max_length_mismatch": -1}, "setting 'max_length_mismatch' is -1. Use an integer >= 0"),
        ({"max_length_mismatch": True}, "setting 'max_length_mismatch' is True. Use an integer >= 0"),
        ({"resize_reference": "yes"}, "resize_reference must be true or false"),
    ],
)
def test_settings_errors_name_the_key(settings: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        QualitySettings(**settings)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test
    assert words in str(raised.value)
