"""FID between the frames of a generated video and those of its ground truth, as pytorch-fid computes it.

**Features.** Each sampled frame goes through pytorch-fid's Inception (``InceptionV3([3])``, its defaults
``resize_input=True, normalize_input=True``): 8-bit RGB to [0, 1] float32 (``x / 255``, as ``ToTensor``),
resized to 299x299 (bilinear, ``align_corners=False``), mapped to [-1, 1] (``2 x - 1``), and read at the final
average pool: 2048 values per frame, kept in float64 from there on.

**Statistics.** pytorch-fid stores every feature vector and calls ``np.mean`` and ``np.cov``; here the vectors
are folded into running sums as they come, ``n``, ``sum x`` and ``sum x x^T`` in float64
(:class:`RunningStatistics`), so memory stays at one 2048x2048 matrix whatever the number of frames, and sums
of several videos or a whole run merge by addition. The covariance ``(sum x x^T - n mu mu^T) / (n - 1)`` is
``np.cov``'s to about 1e-13 relative: the features are non-negative averages of ReLUs whose means are of
the order of their spreads, so the cancellation costs a few of float64's sixteen digits.

**Distance.** ``|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2))`` with SciPy's ``linalg.sqrtm`` and
pytorch-fid's handling of the numerically hard cases: when the square root of the product is not finite,
``1e-6`` is added to both diagonals and it is taken again (the result says so: ``regularised``); a complex
result whose diagonal has an imaginary part beyond ``1e-3`` is an error, otherwise its real part is used.
With fewer frames than 2048 the covariances are singular and FID is biased upwards (the usual caveat of
FID on small samples): compare values computed with the same sampling only.

**Sampling** (:class:`FrameSampling`): every ``stride``-th frame from the first, at most ``max_frames``;
decided as frames stream by, so neither the length nor a second pass is needed.

**Cache.** A ground truth is compared again on every run, so its statistics are kept as ``.npz`` files
(pytorch-fid's ``mu`` and ``sigma`` arrays, plus ``n``) under a key made of the file's SHA-256, the
sampling and the feature network's identity (its weights' SHA-256): :class:`StatisticsCache`.

This module imports torch only to run the network (:class:`InceptionFeatures`); statistics, distance and
cache are NumPy and SciPy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.models.resolve import cache_dir
from pytest_lipsync.models.verify import file_sha256
from pytest_lipsync.results import publish

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.models.resolve import ResolvedWeights

EPS = 1e-6
IMAGINARY_TOLERANCE = 1e-3
INPUT_SIZE = 299
# Frames per decoded batch, which is also the network's batch (quality/video.py says why it is small).
BATCH_SIZE = 4
# Feature vectors buffered before they are folded into the running sums (RunningStatistics says why).
FOLD_ROWS = 256
# Bumped whenever the frames or features behind cached statistics would change (decoding, preprocessing).
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class FrameSampling:
    """Which frames FID reads: frames 0, ``stride``, 2 ``stride``, ..., the first ``max_frames`` of them (all by
    default).

    Consecutive 25 fps frames are nearly the same picture, so a stride buys speed for little information;
    a cap bounds the cost of long videos. Both are decided frame by frame as a video streams.
    """

    stride: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ConfigError(f"the FID frame stride must be a whole number of frames, 1 or more, not {self.stride!r}")
        cap = self.max_frames
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 2):
            raise ConfigError(f"the FID frame cap must be a whole number, 2 or more (a covariance), not {cap!r}")

    def pick(self, first: int, count: int, taken: int) -> slice:
        """The sampled frames of a batch of ``count`` frames numbered from ``first``, once ``taken`` were sampled."""
        start = -first % self.stride
        stop = count
        if self.max_frames is not None:
            stop = min(count, start + max(self.max_frames - taken, 0) * self.stride)
        return slice(start, stop, self.stride)

    def to_json(self) -> dict[str, Any]:
        return {"stride": self.stride, "max_frames": self.max_frames}


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """The Gaussian FID compares: mean (d,) and covariance (d, d) of ``frames`` feature vectors, float64."""

    mean: np.ndarray
    covariance: np.ndarray
    frames: int

    @classmethod
    def from_arrays(cls, arrays: Any) -> FeatureStatistics:
        """From a loaded ``.npz`` (or mapping) holding ``mu``, ``sigma`` and ``n``; shapes are checked."""
        mean, covariance, frames = np.asarray(arrays["mu"]), np.asarray(arrays["sigma"]), int(arrays["n"])
        if mean.ndim != 1 or covariance.shape != (len(mean), len(mean)) or frames < 2:
            raise ValueError(f"not FID statistics: mu {mean.shape}, sigma {covariance.shape}, n {frames}")
        return cls(mean.astype(np.float64), covariance.astype(np.float64), frames)


class RunningStatistics:
    """``n``, ``sum x`` and ``sum x x^T`` of feature vectors in float64: the statistics of any number of frames in
    one d x d matrix, mergeable by addition (module docstring).

    Vectors wait in a buffer of up to :data:`FOLD_ROWS` rows and are folded into the sums together: one d x d
    product and update per buffer instead of one per batch, where a batch of 4 frames would read and write the
    whole 32 MB matrix (at d = 2048) to add a rank-4 term. Memory stays flat (the buffer is 4 MB at d = 2048).
    """

    def __init__(self) -> None:
        self.frames = 0
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    @classmethod
    def of(cls, statistics: FeatureStatistics) -> RunningStatistics:
        """The sums behind ``statistics``, to merge cached statistics of several files."""
        running = cls()
        n, mean = statistics.frames, statistics.mean
        running.frames = n
        running._sum = n * mean
        running._outer = (n - 1) * statistics.covariance + n * np.outer(mean, mean)
        return running

    def add(self, features: np.ndarray) -> None:
        """Fold in (B, d) feature vectors."""
        vectors = np.asarray(features, dtype=np.float64)
        if vectors.ndim != 2:
            raise ValueError(f"features must be (frames, dims), got shape {vectors.shape}")
        self._check_dims(vectors.shape[1])
        self._pending.append(vectors)
        self._pending_rows += len(vectors)
        self.frames += len(vectors)
        if self._pending_rows >= FOLD_ROWS:
            self._flush()

    def update(self, other: RunningStatistics) -> None:
        """Fold in everything ``other`` holds (another video, another file's cached statistics)."""
        other._flush()
        if other._sum is not None and other._outer is not None:
            self._check_dims(other._sum.shape[0])
            self.frames += other.frames
            self._accumulate(other._sum, other._outer)

    def statistics(self) -> FeatureStatistics:
        """Mean and covariance as ``np.mean`` and ``np.cov(rowvar=False)`` give them."""
        self._flush()
        if self._sum is None or self._outer is None or self.frames < 2:
            raise ValueError(f"FID statistics need at least 2 frames, got {self.frames}")
        mean = self._sum / self.frames
        covariance = (self._outer - self.frames * np.outer(mean, mean)) / (self.frames - 1)
        return FeatureStatistics(mean, covariance, self.frames)

    def _check_dims(self, dims: int) -> None:
        held = self._sum.shape[0] if self._sum is not None else self._pending[0].shape[1] if self._pending else dims
        if dims != held:
            raise ValueError(f"features of {dims} dimensions cannot join {held}")

    def _flush(self) -> None:
        if self._pending:
            vectors = np.concatenate(self._pending)
            self._pending, self._pending_rows = [], 0
            self._accumulate(vectors.sum(axis=0), vectors.T @ vectors)

    def _accumulate(self, total: np.ndarray, outer: np.ndarray) -> None:
        if self._sum is None or self._outer is None:
            self._sum, self._outer = np.zeros(total.shape), np.zeros(outer.shape)
        self._sum += total
        self._outer += outer


@dataclass(frozen=True)
class FidResult:
    """FID of two sets of frames; ``regularised``: the eps offset was needed (module docstring)."""

    value: float
    generated_frames: int
    reference_frames: int
    regularised: bool


def frechet_distance(generated: FeatureStatistics, reference: FeatureStatistics, *, eps: float = EPS) -> FidResult:
    """The Fréchet distance of the two Gaussians, by pytorch-fid's rules (module docstring)."""
    from scipy import linalg

    mu1, mu2, sigma1, sigma2 = generated.mean, reference.mean, generated.covariance, reference.covariance
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of {mu1.shape[0]} and {mu2.shape[0]} dimensions cannot be compared")
    with warnings.catch_warnings():
        # SciPy warns of singular products; whether the root is usable is judged below, as pytorch-fid does.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        regularised = not np.isfinite(covmean).all()
        if regularised:
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_TOLERANCE):
            raise ValueError(
                f"the square root of the covariance product has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):g}: these statistics are not covariances of real features"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return FidResult(float(value), generated.frames, reference.frames, bool(regularised))


class FrameFeatures(Protocol):
    """What turns frames into feature vectors: (B, H, W, 3) uint8 RGB -> (B, d) float64.

    ``identity`` names the features in the statistics cache key (for Inception: its weights' SHA-256).
    """

    identity: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


class InceptionFeatures:
    """pytorch-fid's pool3 features of 8-bit RGB frames: :meth:`prepare`, then ``net``, on its device."""

    def __init__(self, net: torch.nn.Module, identity: str) -> None:
        self.net = net
        self.identity = identity

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from pytest_lipsync.models.runtime import to_device

        device = next(self.net.parameters()).device
        with torch.inference_mode():
            features = self.net(self.prepare(to_device(frames, device)))
        return features.cpu().numpy().astype(np.float64)

    @staticmethod
    def prepare(frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, 299, 299) float32 in [-1, 1], step for step as pytorch-fid."""
        import torch.nn.functional as F

        unit = frames.permute(0, 3, 1, 2).float() / 255
        resized = F.interpolate(unit, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * resized - 1


def load_inception_features(weights: ResolvedWeights, device: str = "cpu") -> InceptionFeatures:
    """The FID network filled from a checked file, in eval mode on ``device``, identified by the file's SHA-256."""
    import torch

    from pytest_lipsync.quality.networks.base import load_released
    from pytest_lipsync.quality.networks.inception import FIDInceptionV3

    net = FIDInceptionV3()
    load_released(net, weights)
    return InceptionFeatures(net.eval().to(torch.device(device)), weights.sha256)


class SampledStatistics:
    """Running statistics of the frames ``sampling`` picks from a stream of batches, fed in order."""

    def __init__(self, features: FrameFeatures, sampling: FrameSampling = FrameSampling()) -> None:
        self.features = features
        self.sampling = sampling
        self.running = RunningStatistics()
        self._next_frame = 0

    @property
    def full(self) -> bool:
        """Whether ``max_frames`` frames were sampled: later batches would add nothing."""
        return self.sampling.max_frames is not None and self.running.frames >= self.sampling.max_frames

    def add(self, frames: np.ndarray) -> None:
        """The next (B, H, W, 3) uint8 RGB frames of the stream; only the sampled ones reach the network."""
        picked = frames[self.sampling.pick(self._next_frame, len(frames), self.running.frames)]
        self._next_frame += len(frames)
        if len(picked):
            self.running.add(self.features(np.ascontiguousarray(picked)))


def stream_statistics(
    batches: Iterator[np.ndarray], features: FrameFeatures, sampling: FrameSampling = FrameSampling()
) -> FeatureStatistics:
    """Statistics of the sampled frames of a stream of batches, reading no further than the sampling needs."""
    sampled = SampledStatistics(features, sampling)
    for batch in batches:
        sampled.add(batch)
        if sampled.full:
            break
    return sampled.running.statistics()


def video_statistics(
    path: Path,
    features: FrameFeatures,
    sampling: FrameSampling = FrameSampling(),
    *,
    limits: VideoLimits = VideoLimits(),
    batch_size: int = BATCH_SIZE,
) -> FeatureStatistics:
    """Statistics of a video file's sampled frames, decoded by the 25 fps RGB path PSNR/SSIM use."""
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.media.prefetch import prefetch

    frames = open_video(path, limits).frames(batch_size, pix_fmt="rgb24")
    # Closed on the way out, so that a cap reached early stops the decoding thread at once.
    with closing(prefetch(frames)) as batches:
        return stream_statistics(batches, features, sampling)


class StatisticsCache:
    """Statistics of ground-truth files as ``<key>.npz`` in ``directory``; written atomically, and an entry that
    cannot be read is computed again rather than trusted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(reference_sha256: str, sampling: FrameSampling, identity: str) -> str:
        """SHA-256 of everything the statistics depend on: the file's bytes, the sampling and the features."""
        record = {
            "format": _CACHE_FORMAT,
            "reference": reference_sha256,
            "sampling": sampling.to_json(),
            "features": identity,
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str) -> FeatureStatistics | None:
        try:
            with np.load(self.path(key)) as arrays:
                if str(arrays["key"]) != key:
                    return None
                return FeatureStatistics.from_arrays(arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    def store(self, key: str, statistics: FeatureStatistics) -> None:
        """Write through a temporary file and a rename; a cache that cannot be written is only a slower run."""
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "wb") as sink:
                    # pytorch-fid's names (mu, sigma), so that its tools read the file; n to merge; the key
                    # to tell a renamed or colliding entry.
                    mean, covariance, frames = statistics.mean, statistics.covariance, np.int64(statistics.frames)
                    np.savez(sink, mu=mean, sigma=covariance, n=frames, key=np.array(key))
                publish(Path(temporary), self.path(key))
            except OSError:
                os.unlink(temporary)
                raise


def default_cache() -> StatisticsCache:
    """Statistics under the user cache directory that holds the weights (``fid-statistics``)."""
    return StatisticsCache(cache_dir() / "fid-statistics")


def reference_statistics(
    path: Path,
    features: FrameFeatures,
    sampling: FrameSampling = FrameSampling(),
    *,
    cache: StatisticsCache | None = None,
    limits: VideoLimits = VideoLimits(),
) -> FeatureStatistics:
    """A ground truth's statistics: from ``cache`` when it holds this file, sampling and features, else computed
    (and stored there)."""
    if cache is None:
        return video_statistics(path, features, sampling, limits=limits)
    key = StatisticsCache.key(file_sha256(path), sampling, features.identity)
    cached = cache.load(key)
    if cached is not None:
        return cached
    statistics = video_statistics(path, features, sampling, limits=limits)
    cache.store(key, statistics)
    return statistics
