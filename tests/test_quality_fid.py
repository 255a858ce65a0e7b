"""FID against the Fréchet distance written out with NumPy, streaming statistics against ``np.cov``, the
Inception against a literal float64 rendering of its published layers, sampling, caching and loading.

The network carries stand-in weights with every key and shape of pytorch-fid's file (generated here from a
fixed seed): its features test the layers' arithmetic, not image statistics. Distances are checked on
low-dimensional features, where the matrix square root is instant; the 2048-dimensional case is the same
code.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pytest_lipsync.errors import ConfigError, WeightsError
from pytest_lipsync.media.decode import open_video
from pytest_lipsync.models.registry import FID_INCEPTION, QUALITY, RELEASED
from pytest_lipsync.models.resolve import resolve_weights
from pytest_lipsync.quality.fid import (
    FOLD_ROWS,
    FeatureStatistics,
    FrameSampling,
    InceptionFeatures,
    RunningStatistics,
    StatisticsCache,
    frechet_distance,
    load_inception_features,
    reference_statistics,
    stream_statistics,
)
from pytest_lipsync.quality.networks.base import on_meta
from pytest_lipsync.quality.networks.inception import FIDInceptionV3
from pytest_lipsync.synthetic.clips import ClipSpec
from pytest_lipsync.synthetic.networks import save_state_dict, standin_network_state_dict
from tests.conftest import MakeClip

State = dict[str, torch.Tensor]


def literal_frechet(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2), the trace of the root taken as the sum of the roots
    of the eigenvalues of the symmetric S1^1/2 S2 S1^1/2 (the same eigenvalues as S1 S2)."""
    values, vectors = np.linalg.eigh(sigma1)
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = np.linalg.eigvalsh(root @ sigma2 @ root)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(product, 0, None)).sum())


def pool3_like(count: int, dims: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated features of the scale of Inception's pool3 averages."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0, 1, (dims, dims)) / dims**0.5
    return np.maximum(rng.normal(shift, 1, (count, dims)) @ mixing + 0.3, 0)


def statistics_of(features: np.ndarray) -> FeatureStatistics:
    return FeatureStatistics(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def in_batches(features: np.ndarray, sizes: list[int]) -> RunningStatistics:
    running = RunningStatistics()
    for start, stop in zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes)):
        running.add(features[start:stop])
    return running


# --- the Fréchet distance and the statistics ---------------------------------------------------------


def test_fid_of_streamed_features_equals_the_formula_on_batch_statistics() -> None:
    generated, reference = pool3_like(300, 24, seed=0, shift=0.3), pool3_like(200, 24, seed=1)
    streamed = frechet_distance(
        in_batches(generated, [7, 1, 150, 142]).statistics(), in_batches(reference, [200]).statistics()
    )
    expected = literal_frechet(
        generated.mean(0), np.cov(generated, rowvar=False), reference.mean(0), np.cov(reference, rowvar=False)
    )
    assert streamed.value == pytest.approx(expected, rel=1e-4)
    assert (streamed.generated_frames, streamed.reference_frames, streamed.regularised) == (300, 200, False)


def test_streaming_statistics_equal_the_batch_statistics() -> None:
    features = pool3_like(257, 32, seed=2)
    streamed = in_batches(features, [1, 64, 64, 100, 28]).statistics()
    np.testing.assert_allclose(streamed.mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-13)
    assert streamed.frames == 257


def test_statistics_merge_across_videos_and_cached_files() -> None:
    first, second = pool3_like(40, 8, seed=3), pool3_like(60, 8, seed=4, shift=1.0)
    merged = in_batches(first, [40])
    merged.update(RunningStatistics.of(statistics_of(second)))
    expected = statistics_of(np.concatenate([first, second]))
    np.testing.assert_allclose(merged.statistics().mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.statistics().covariance, expected.covariance, rtol=1e-9, atol=1e-13)


def test_buffered_vectors_count_and_merge_before_and_after_they_are_folded() -> None:
    """Vectors wait in a buffer of FOLD_ROWS rows: the frame count, a merge and the statistics see them either way."""
    features = pool3_like(2 * FOLD_ROWS + 3, 6, seed=8)
    running = in_batches(features, [FOLD_ROWS - 1, 2, FOLD_ROWS, 2])  # folded at FOLD_ROWS + 1 and 2 * FOLD_ROWS + 1
    assert running.frames == len(features)
    pending, folded = in_batches(features[:5], [5]), in_batches(features[5:], [len(features) - 5])
    pending.update(folded)  # both sides still buffered, or one folded: the same sums
    expected = statistics_of(features)
    for merged in (running, pending):
        np.testing.assert_allclose(merged.statistics().mean, expected.mean, rtol=1e-12)
        np.testing.assert_allclose(merged.statistics().covariance, expected.covariance, rtol=1e-9, atol=1e-13)
    with pytest.raises(ValueError, match="features of 3 dimensions cannot join 6"):
        pending.update(in_batches(pool3_like(4, 3, 0), [4]))


def test_identical_frames_and_identical_statistics_score_zero() -> None:
    features = pool3_like(80, 16, seed=5)
    same = statistics_of(features)
    assert frechet_distance(same, same).value == pytest.approx(0, abs=1e-9 * np.trace(same.covariance))
    frozen = in_batches(np.repeat(features[:1], 30, axis=0), [10, 20]).statistics()  # one frame, repeated
    assert abs(frechet_distance(frozen, frozen).value) < 1e-9


def test_a_product_without_a_square_root_is_regularised_as_pytorch_fid_does() -> None:
    nilpotent = np.array([[0.0, 1.0], [0.0, 0.0]])  # no square root: SciPy returns non-finite values
    first = FeatureStatistics(np.array([1.0, 2.0]), nilpotent, 10)
    second = FeatureStatistics(np.zeros(2), np.eye(2), 10)
    result = frechet_distance(first, second)
    offset = 1e-6 * np.eye(2)
    roots = np.sqrt(np.linalg.eigvals((nilpotent + offset) @ (np.eye(2) + offset)).astype(complex))
    expected = 5.0 + 0.0 + 2.0 - 2 * roots.real.sum()
    assert result.regularised
    assert result.value == pytest.approx(expected, rel=1e-4)


def test_an_imaginary_root_is_an_error() -> None:
    """A negative eigenvalue of the product: not the covariances of real features."""
    first = FeatureStatistics(np.zeros(2), np.diag([1.0, 1.0]), 10)
    second = FeatureStatistics(np.zeros(2), np.diag([-1.0, 1.0]), 10)
    with pytest.raises(ValueError, match="imaginary component of 1"):
        frechet_distance(first, second)


def test_statistics_of_another_dimension_are_refused() -> None:
    with pytest.raises(ValueError, match="statistics of 2 and 3 dimensions"):
        frechet_distance(statistics_of(pool3_like(5, 2, 0)), statistics_of(pool3_like(5, 3, 0)))
    running = in_batches(pool3_like(5, 2, 0), [5])
    with pytest.raises(ValueError, match="features of 3 dimensions cannot join 2"):
        running.add(pool3_like(5, 3, 0))


def test_one_frame_has_no_covariance() -> None:
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        in_batches(pool3_like(1, 4, 0), [1]).statistics()


# --- sampling -----------------------------------------------------------------------------------------


class Probe:
    """Features that say which frames arrived: the index each test frame carries in its pixels."""

    identity = "probe"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        indices = frames[:, 0, 0, 0].astype(np.int64) + 256 * frames[:, 0, 0, 1].astype(np.int64)
        self.seen += indices.tolist()
        return np.stack([indices, indices**2], axis=1).astype(np.float64)


def numbered_batches(sizes: list[int], read: list[int]) -> Iterator[np.ndarray]:
    """Batches of tiny frames numbered 0, 1, 2, ...; ``read`` counts the batches taken."""
    start = 0
    for size in sizes:
        read.append(size)
        index = np.arange(start, start + size)
        frames = np.zeros((size, 2, 2, 3), np.uint8)
        frames[:, :, :, 0], frames[:, :, :, 1] = (index % 256)[:, None, None], (index // 256)[:, None, None]
        yield frames
        start += size


@pytest.mark.parametrize(
    ("stride", "max_frames", "sizes"),
    [(1, None, [4, 4, 3]), (3, None, [4, 4, 4, 1]), (5, None, [1, 2, 3, 7, 11]), (2, 4, [3, 3, 3, 3]), (4, 2, [13])],
)
def test_sampling_takes_every_strideth_frame_up_to_the_cap(
    stride: int, max_frames: int | None, sizes: list[int]
) -> None:
    probe = Probe()
    stream_statistics(numbered_batches(sizes, []), probe, FrameSampling(stride, max_frames))
    expected = [index for index in range(sum(sizes)) if index % stride == 0][:max_frames]
    assert probe.seen == expected


def test_reading_stops_once_the_cap_is_reached() -> None:
    read: list[int] = []
    stream_statistics(numbered_batches([4] * 100, read), Probe(), FrameSampling(stride=2, max_frames=5))
    assert len(read) == 3  # frames 0, 2, 4, 6, 8 are in the first three batches


@pytest.mark.parametrize(("stride", "max_frames"), [(0, None), (1.5, None), (1, 1), (True, None)])
def test_a_meaningless_sampling_is_a_usage_error(stride: object, max_frames: object) -> None:
    with pytest.raises(ConfigError, match="FID frame"):
        FrameSampling(stride, max_frames)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test


# --- the network --------------------------------------------------------------------------------------


def literal_inception(x: torch.Tensor, state: State) -> torch.Tensor:
    """pytorch-fid's Inception v3 up to pool3, block by block in float64, from the state dict alone."""

    def conv(name: str, inputs: torch.Tensor, stride: int = 1, padding: int | tuple[int, int] = 0) -> torch.Tensor:
        weight = state[f"{name}.conv.weight"].double()
        out = F.conv2d(inputs, weight, stride=stride, padding=padding)
        mean, var = state[f"{name}.bn.running_mean"].double(), state[f"{name}.bn.running_var"].double()
        scale, shift = state[f"{name}.bn.weight"].double(), state[f"{name}.bn.bias"].double()
        normalised = (out - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 0.001)
        return torch.clamp(normalised * scale[:, None, None] + shift[:, None, None], min=0)

    def tf_average(inputs: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(inputs, 3, stride=1, padding=1, count_include_pad=False)

    def block_a(p: str, v: torch.Tensor) -> torch.Tensor:
        b5 = conv(f"{p}.branch5x5_2", conv(f"{p}.branch5x5_1", v), padding=2)
        b3 = conv(f"{p}.branch3x3dbl_1", v)
        b3 = conv(f"{p}.branch3x3dbl_3", conv(f"{p}.branch3x3dbl_2", b3, padding=1), padding=1)
        return torch.cat([conv(f"{p}.branch1x1", v), b5, b3, conv(f"{p}.branch_pool", tf_average(v))], 1)

    def block_b(p: str, v: torch.Tensor) -> torch.Tensor:
        b3 = conv(f"{p}.branch3x3dbl_2", conv(f"{p}.branch3x3dbl_1", v), padding=1)
        b3 = conv(f"{p}.branch3x3dbl_3", b3, stride=2)
        return torch.cat([conv(f"{p}.branch3x3", v, stride=2), b3, F.max_pool2d(v, 3, stride=2)], 1)

    def block_c(p: str, v: torch.Tensor) -> torch.Tensor:
        b7 = conv(f"{p}.branch7x7_2", conv(f"{p}.branch7x7_1", v), padding=(0, 3))
        b7 = conv(f"{p}.branch7x7_3", b7, padding=(3, 0))
        d = conv(f"{p}.branch7x7dbl_1", v)
        for index, padding in ((2, (3, 0)), (3, (0, 3)), (4, (3, 0)), (5, (0, 3))):
            d = conv(f"{p}.branch7x7dbl_{index}", d, padding=padding)
        return torch.cat([conv(f"{p}.branch1x1", v), b7, d, conv(f"{p}.branch_pool", tf_average(v))], 1)

    def block_d(p: str, v: torch.Tensor) -> torch.Tensor:
        b3 = conv(f"{p}.branch3x3_2", conv(f"{p}.branch3x3_1", v), stride=2)
        b7 = conv(f"{p}.branch7x7x3_2", conv(f"{p}.branch7x7x3_1", v), padding=(0, 3))
        b7 = conv(f"{p}.branch7x7x3_4", conv(f"{p}.branch7x7x3_3", b7, padding=(3, 0)), stride=2)
        return torch.cat([b3, b7, F.max_pool2d(v, 3, stride=2)], 1)

    SIDES = (("a", (0, 1)), ("b", (1, 0)))  # the E blocks' 1x3 and 3x1 halves

    def block_e(p: str, v: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        b3 = conv(f"{p}.branch3x3_1", v)
        b3 = torch.cat([conv(f"{p}.branch3x3_2{side}", b3, padding=padding) for side, padding in SIDES], 1)
        d = conv(f"{p}.branch3x3dbl_2", conv(f"{p}.branch3x3dbl_1", v), padding=1)
        d = torch.cat([conv(f"{p}.branch3x3dbl_3{side}", d, padding=padding) for side, padding in SIDES], 1)
        return torch.cat([conv(f"{p}.branch1x1", v), b3, d, conv(f"{p}.branch_pool", pool(v))], 1)

    x = conv("Conv2d_2b_3x3", conv("Conv2d_2a_3x3", conv("Conv2d_1a_3x3", x, stride=2)), padding=1)
    x = F.max_pool2d(x, 3, stride=2)
    x = F.max_pool2d(conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x)), 3, stride=2)
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = block_a(name, x)
    x = block_b("Mixed_6a", x)
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = block_c(name, x)
    x = block_e("Mixed_7b", block_d("Mixed_7a", x), tf_average)
    x = block_e("Mixed_7c", x, lambda v: F.max_pool2d(v, 3, stride=1, padding=1))
    return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = standin_network_state_dict(on_meta(FIDInceptionV3), seed=3)
    return save_state_dict(state, tmp_path_factory.mktemp("fid") / "standin_pt_inception.pth")


@pytest.fixture(scope="module")
def inception(inception_file: Path) -> InceptionFeatures:
    return load_inception_features(resolve_weights(FID_INCEPTION, inception_file))


def test_inception_equals_the_literal_network(inception_file: Path, inception: InceptionFeatures) -> None:
    """On a 75x107 input, a fraction of the work of 299x299: the smallest height the layers allow, and a width
    that leaves the last blocks two positions, so that their pools (average or max) differ."""
    x = torch.rand((1, 3, 75, 107), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        got = inception.net(x).double()
    expected = literal_inception(x.double(), torch.load(inception_file, weights_only=True))
    assert got.shape == (1, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def literal_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an (H, W, C) float image with half-pixel centres (``align_corners=False``): output
    pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped at 0, between its two neighbours."""

    def along(values: np.ndarray, axis: int) -> np.ndarray:
        count = values.shape[axis]
        source = np.maximum((np.arange(size) + 0.5) * count / size - 0.5, 0)
        low = np.floor(source).astype(int)
        high, weight = np.minimum(low + 1, count - 1), source - low
        shape = [1] * values.ndim
        shape[axis] = size
        weight = weight.reshape(shape)
        return np.take(values, low, axis) * (1 - weight) + np.take(values, high, axis) * weight

    return along(along(image, 0), 1)


@pytest.mark.parametrize("size", [(64, 48), (300, 420), (299, 299)], ids=["upsample", "downsample", "same"])
def test_frames_are_prepared_as_pytorch_fid_prepares_them(size: tuple[int, int]) -> None:
    """[0, 1], bilinear to 299x299 with half-pixel centres, then [-1, 1]."""
    frames = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    prepared = InceptionFeatures.prepare(torch.from_numpy(frames)).numpy()
    expected = 2 * np.stack([literal_resize(frame / 255, 299) for frame in frames]).transpose(0, 3, 1, 2) - 1
    assert prepared.dtype == np.float32
    # torch places the samples in float32: up to 1e-4 off at 420 pixels, an eightieth of an 8-bit level
    np.testing.assert_allclose(prepared, expected, atol=1e-4)


def test_features_are_the_network_on_prepared_frames() -> None:
    # Any network mapping prepared frames to vectors: this one sees the whole prepared frame.
    probe = torch.nn.Sequential(torch.nn.Conv2d(3, 5, kernel_size=299), torch.nn.Flatten())
    frames = np.random.default_rng(1).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    features = InceptionFeatures(probe, "probe")(frames)
    with torch.inference_mode():
        expected = probe(InceptionFeatures.prepare(torch.from_numpy(frames))).double().numpy()
    assert features.dtype == np.float64 and features.shape == (3, 5)
    np.testing.assert_array_equal(features, expected)


def test_the_released_layout_loads_key_for_key(inception_file: Path, inception: InceptionFeatures) -> None:
    released = torch.load(inception_file, weights_only=True)
    loaded = inception.net.state_dict()
    assert set(loaded) == {key for key in released if not key.startswith("fc.")}
    assert {key for key in released if key.startswith("fc.")} == {"fc.weight", "fc.bias"}
    assert released["fc.weight"].shape == (1008, 2048)
    assert any(key.endswith("num_batches_tracked") for key in released)
    for key, value in loaded.items():
        assert torch.equal(value, released[key]), key


@pytest.mark.parametrize(
    ("key", "change", "says"),
    [
        ("Mixed_7c.branch_pool.bn.running_var", "missing", r"'Mixed_7c\.branch_pool\.bn\.running_var' \(192,\) is"),
        ("fc.bias", "missing", r"key 'fc\.bias' \(1008,\) is missing"),
        ("AuxLogits.fc.weight", "extra", r"unexpected key 'AuxLogits\.fc\.weight'"),
        ("Conv2d_1a_3x3.conv.weight", "shape", r"'Conv2d_1a_3x3\.conv\.weight' has shape \(32, 3, 3, 4\)"),
    ],
)
def test_a_file_of_another_layout_is_refused_by_key(
    key: str, change: str, says: str, inception_file: Path, tmp_path: Path
) -> None:
    state = dict(torch.load(inception_file, weights_only=True))
    if change == "missing":
        del state[key]
    elif change == "extra":
        state[key] = torch.zeros(3)
    else:
        state[key] = torch.zeros((32, 3, 3, 4))
    edited = save_state_dict(state, tmp_path / "edited.pth")
    with pytest.raises(WeightsError, match=says):
        load_inception_features(resolve_weights(FID_INCEPTION, edited))


def test_missing_weights_name_the_file_its_hash_and_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for variable in ("LIPSYNC_HOME", "LIPSYNC_OFFLINE", FID_INCEPTION.env_var):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(WeightsError) as raised:
        resolve_weights(FID_INCEPTION, offline=True)
    message = str(raised.value)
    assert FID_INCEPTION.filename in message and FID_INCEPTION.sha256 in message and FID_INCEPTION.urls[0] in message


def test_the_registry_entry_pins_pytorch_fids_file() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", FID_INCEPTION.sha256)
    assert FID_INCEPTION.sha256.startswith(FID_INCEPTION.filename.removesuffix(".pth").rsplit("-", 1)[1])
    assert FID_INCEPTION.urls[0].rsplit("/", 1)[1] == FID_INCEPTION.filename
    assert FID_INCEPTION in QUALITY and FID_INCEPTION not in RELEASED


# --- the ground truth's statistics and their cache ----------------------------------------------------


class ChannelMoments:
    """Cheap stand-in features (mean and spread of each channel), counting the frames they are asked for."""

    identity = "channel-moments"

    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.frames += len(frames)
        pixels = frames.reshape(len(frames), -1, 3).astype(np.float64)
        return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


def test_reference_statistics_are_those_of_the_sampled_decoded_frames(make_clip: MakeClip, tmp_path: Path) -> None:
    video = make_clip("fid-reference.mp4", ClipSpec(seconds=1.0, width=64, height=48))
    sampling = FrameSampling(stride=3)
    decoded = np.concatenate(list(open_video(video).frames(7, pix_fmt="rgb24")))
    expected = statistics_of(ChannelMoments()(decoded[::3]))
    features, cache = ChannelMoments(), StatisticsCache(tmp_path / "cache")
    computed = reference_statistics(video, features, sampling, cache=cache)
    assert computed.frames == len(decoded[::3]) == features.frames
    np.testing.assert_allclose(computed.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(computed.covariance, expected.covariance, rtol=1e-9, atol=1e-12)
    again = reference_statistics(video, features, sampling, cache=cache)
    assert features.frames == computed.frames  # served from the cache: no frame decoded or measured again
    np.testing.assert_array_equal(again.covariance, computed.covariance)
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [
        f"{StatisticsCache.key(_sha256(video), sampling, 'channel-moments')}.npz"
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cache_key_changes_with_the_file_the_sampling_and_the_features() -> None:
    base = StatisticsCache.key("a" * 64, FrameSampling(), "weights")
    assert len({
        base,
        StatisticsCache.key("b" * 64, FrameSampling(), "weights"),
        StatisticsCache.key("a" * 64, FrameSampling(stride=2), "weights"),
        StatisticsCache.key("a" * 64, FrameSampling(max_frames=100), "weights"),
        StatisticsCache.key("a" * 64, FrameSampling(), "other weights"),
    }) == 5  # fmt: skip
    assert base == StatisticsCache.key("a" * 64, FrameSampling(stride=1, max_frames=None), "weights")


def test_cache_entries_round_trip_in_pytorch_fids_format(tmp_path: Path) -> None:
    cache, statistics = StatisticsCache(tmp_path), statistics_of(pool3_like(20, 6, seed=7))
    cache.store("k" * 64, statistics)
    loaded = cache.load("k" * 64)
    assert loaded is not None and loaded.frames == 20
    np.testing.assert_array_equal(loaded.covariance, statistics.covariance)
    with np.load(cache.path("k" * 64)) as arrays:  # readable by pytorch-fid: mu and sigma
        np.testing.assert_array_equal(arrays["mu"], statistics.mean)
    assert [path.name for path in tmp_path.iterdir()] == ["k" * 64 + ".npz"]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncated", "other-key", "not-npz"])
def test_a_damaged_cache_entry_is_computed_again(damage: str, tmp_path: Path, make_clip: MakeClip) -> None:
    video = make_clip("fid-damaged.mp4", ClipSpec(seconds=0.4, width=32, height=32))
    cache, sampling = StatisticsCache(tmp_path), FrameSampling()
    key = StatisticsCache.key(_sha256(video), sampling, ChannelMoments.identity)
    if damage == "truncated":
        cache.store(key, statistics_of(pool3_like(5, 6, seed=8)))
        cache.path(key).write_bytes(cache.path(key).read_bytes()[:100])
    elif damage == "other-key":  # an entry renamed by hand, or a hash collision
        cache.store("0" * 64, statistics_of(pool3_like(5, 6, seed=8)))
        os.replace(cache.path("0" * 64), cache.path(key))
    else:
        cache.path(key).write_text("not statistics")
    features = ChannelMoments()
    computed = reference_statistics(video, features, sampling, cache=cache)
    assert features.frames == computed.frames > 0
    stored = cache.load(key)
    assert stored is not None and np.array_equal(stored.mean, computed.mean)


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, make_clip: MakeClip) -> None:
    video = make_clip("fid-unwritable.mp4", ClipSpec(seconds=0.4, width=32, height=32))
    blocked = tmp_path / "file-not-directory"
    blocked.write_text("")
    statistics = reference_statistics(video, ChannelMoments(), cache=StatisticsCache(blocked / "cache"))
    assert statistics.frames == 10


def test_importing_fid_loads_no_torch() -> None:
    code = "import sys, pytest_lipsync.quality.fid; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
