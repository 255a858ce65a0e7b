"""Streaming PSNR/SSIM of a generated video against its ground truth, into one frozen result.

Frames arrive in batches from two decoders whose batch boundaries need not agree; they are paired frame by
frame, measured, and dropped, so memory holds a batch or two per video plus one float per frame and metric,
whatever the video's length. ``device = "cpu"`` uses the OpenCV functions, any other torch device the
torch ones (the batch is moved there).

Reported PSNR is capped at 100 dB and identical frames are counted: see :mod:`pytest_lipsync.quality.psnr`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pytest_lipsync.metrics import HIGHER_IS_BETTER
from pytest_lipsync.quality.alignment import LengthAlignment, align_lengths, needs_resize, resize_frames
from pytest_lipsync.quality.psnr import PSNR_CAP_DB, psnr, psnr_torch, reported_psnr
from pytest_lipsync.quality.settings import Color, QualitySettings, Region, SsimWindow
from pytest_lipsync.quality.ssim import ssim, ssim_torch

# A per-frame metric beside PSNR/SSIM (LPIPS, CPBD): (reference, generated) batches of (B, H, W, 3) uint8 RGB ->
# (B,) float64. One that needs no ground truth (CPBD) reads the generated frames only, and is given ``None``
# for the reference where there is none.
Measure = Callable[[np.ndarray | None, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MetricSeries:
    """One metric over the compared frames; the worst frame is the minimum, or the maximum for a metric that
    is better lower (LPIPS)."""

    values: tuple[float, ...]
    mean: float
    worst_frame: int
    worst: float

    @classmethod
    def of(cls, values: Sequence[float], higher_is_better: bool = True) -> MetricSeries:
        pick = min if higher_is_better else max
        worst_frame = pick(range(len(values)), key=values.__getitem__)
        return cls(tuple(values), math.fsum(values) / len(values), worst_frame, values[worst_frame])

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "worst": {"frame": self.worst_frame, "value": self.worst},
            "per_frame": list(self.values),
        }


@dataclass(frozen=True)
class TrackSpan:
    """The frames of one face track whose crops were compared (``region = "face"``), both ends included."""

    first_frame: int
    last_frame: int

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1


@dataclass(frozen=True)
class QualityResult:
    """PSNR and SSIM of one video against its reference, with the variant and alignment that produced them.

    With ``region = "face"`` the series run over face crops, track after track in the order of ``tracks``
    (each track's crops in frame order), and the means are over all (track, frame) crops.
    """

    psnr: MetricSeries
    ssim: MetricSeries
    identical_frames: int
    lengths: LengthAlignment
    resized_reference: bool
    ssim_window: SsimWindow
    color: Color
    region: Region
    psnr_cap_db: float = PSNR_CAP_DB
    tracks: tuple[TrackSpan, ...] = ()
    measured: Mapping[str, MetricSeries] = field(default_factory=dict)  # the opt-in metrics (LPIPS, CPBD)

    @property
    def frames(self) -> int:
        return self.lengths.compared

    def crop_at(self, index: int) -> tuple[int, int]:
        """(track, frame) of the ``index``-th value of a face-region series."""
        return crop_at(self.tracks, index)

    def to_json(self) -> dict[str, Any]:
        """Standard JSON (no infinities: PSNR is capped), every variant and length fact named."""
        return {
            "psnr": self._series_json(self.psnr),
            "ssim": self._series_json(self.ssim),
            "frames": self.frames,
            "generated_frames": self.lengths.generated_frames,
            "reference_frames": self.lengths.reference_frames,
            "length_mismatch": self.lengths.mismatch,
            "identical_frames": self.identical_frames,
            "psnr_cap_db": self.psnr_cap_db,
            "ssim_window": self.ssim_window,
            "color": self.color,
            "region": self.region,
            "resized_reference": self.resized_reference,
            **{name: self._series_json(series) for name, series in self.measured.items()},
            **self._tracks_json(),
        }

    def _series_json(self, series: MetricSeries) -> dict[str, Any]:
        return series_json(series, self.tracks)

    def _tracks_json(self) -> dict[str, Any]:
        return tracks_json(self.tracks)


def crop_at(tracks: Sequence[TrackSpan], index: int) -> tuple[int, int]:
    """(track, frame) of the ``index``-th value of a face-region series that ran over ``tracks`` in order."""
    for track, span in enumerate(tracks):
        if index < span.frames:
            return track, span.first_frame + index
        index -= span.frames
    raise IndexError("no face crop at this index")


def series_json(series: MetricSeries, tracks: Sequence[TrackSpan]) -> dict[str, Any]:
    """A series; in the face region (``tracks``) the worst value names its track and video frame, not a crop index."""
    document = series.to_json()
    if tracks:
        track, frame = crop_at(tracks, series.worst_frame)
        document["worst"] = {"frame": frame, "track": track, "value": series.worst}
    return document


def tracks_json(tracks: Sequence[TrackSpan]) -> dict[str, Any]:
    """The face tracks a face-region series ran over, and how many crops (nothing for whole frames)."""
    if not tracks:
        return {}
    spans = [{"first_frame": span.first_frame, "last_frame": span.last_frame} for span in tracks]
    return {"tracks": spans, "crops": sum(span.frames for span in tracks)}


class Accumulator(Protocol):
    """What :func:`compare_streams` feeds aligned batches to: whole frames, or their face crops."""

    def add(self, gt: np.ndarray, gen: np.ndarray) -> None: ...

    def result(self, lengths: LengthAlignment, resized_reference: bool) -> QualityResult: ...


class QualityAccumulator:
    """Per-frame values of aligned (reference, generated) batches, kept as plain floats."""

    def __init__(
        self, settings: QualitySettings, device: str = "cpu", measures: Mapping[str, Measure] | None = None
    ) -> None:
        self.settings = settings
        self.device = device
        self.measures: Mapping[str, Measure] = measures or {}
        self._psnr = array("d")
        self._ssim = array("d")
        self._measured = {name: array("d") for name in self.measures}
        self._identical = 0

    def add(self, gt: np.ndarray, gen: np.ndarray) -> None:
        """Measure two (B, H, W, 3) uint8 RGB batches of equal shape, frame i against frame i."""
        psnr_values, ssim_values = self._measure(gt, gen)
        self._identical += int(np.isinf(psnr_values).sum())
        self._psnr.extend(reported_psnr(psnr_values).tolist())
        self._ssim.extend(ssim_values.tolist())
        for name, measure in self.measures.items():
            self._measured[name].extend(measure(gt, gen).tolist())

    @property
    def count(self) -> int:
        return len(self._psnr)

    def extend(self, other: QualityAccumulator) -> None:
        """Append the values ``other`` measured (the face crops of the next track)."""
        self._psnr.extend(other._psnr)
        self._ssim.extend(other._ssim)
        for name, values in other._measured.items():
            self._measured.setdefault(name, array("d")).extend(values)
        self._identical += other._identical

    def result(
        self, lengths: LengthAlignment, resized_reference: bool, tracks: tuple[TrackSpan, ...] = ()
    ) -> QualityResult:
        """The result; ``tracks``: the face tracks whose crops were measured, in the order they were added."""
        expected = sum(span.frames for span in tracks) if tracks else lengths.compared
        if self.count != expected:
            raise ValueError(f"{self.count} frames or crops were measured but {expected} were compared")
        return QualityResult(
            psnr=MetricSeries.of(self._psnr),
            ssim=MetricSeries.of(self._ssim),
            identical_frames=self._identical,
            lengths=lengths,
            resized_reference=resized_reference,
            ssim_window=self.settings.ssim_window,
            color=self.settings.color,
            region=self.settings.region,
            tracks=tracks,
            measured={name: MetricSeries.of(values, HIGHER_IS_BETTER[name]) for name, values in self._measured.items()},
        )

    def _measure(self, gt: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        window, color = self.settings.ssim_window, self.settings.color
        if self.device == "cpu":
            return psnr(gt, gen, color=color), ssim(gt, gen, window=window, color=color)
        import torch

        from pytest_lipsync.models.runtime import to_device

        device = torch.device(self.device)
        gt_tensor, gen_tensor = to_device(gt, device), to_device(gen, device)
        psnr_values = psnr_torch(gt_tensor, gen_tensor, color=color)
        ssim_values = ssim_torch(gt_tensor, gen_tensor, window=window, color=color)
        return psnr_values.cpu().numpy(), ssim_values.cpu().numpy()


def compare_streams(
    generated: Iterable[np.ndarray],
    reference: Iterable[np.ndarray],
    settings: QualitySettings,
    *,
    device: str = "cpu",
    video: Path | None = None,
    reference_path: Path | None = None,
    accumulator: Accumulator | None = None,
) -> QualityResult:
    """Compare two streams of (B, H, W, 3) uint8 RGB batches frame by frame (the alignment module's rules).

    ``video`` and ``reference_path`` only name the files in errors. ``accumulator`` measures the aligned
    batches (default: whole frames; :mod:`.face` measures face crops). A length mismatch beyond
    ``settings.max_length_mismatch`` is only known once both streams have ended, so it raises after the
    common frames were measured; the longer stream's tail is decoded to count it, never measured.
    """
    generated_stream, reference_stream = _Stream(generated), _Stream(reference)
    accumulator = accumulator or QualityAccumulator(settings, device)
    resized = False
    for gen, gt in _aligned_batches(generated_stream, reference_stream):
        generated_size, reference_size = (gen.shape[2], gen.shape[1]), (gt.shape[2], gt.shape[1])
        if needs_resize(
            generated_size, reference_size, settings.resize_reference, video=video, reference=reference_path
        ):
            gt, resized = resize_frames(gt, generated_size), True
        accumulator.add(gt, gen)
    lengths = align_lengths(
        generated_stream.frames,
        reference_stream.frames,
        settings.max_length_mismatch,
        video=video,
        reference=reference_path,
    )
    return accumulator.result(lengths, resized)


_NO_FRAMES = np.empty((0, 0, 0, 3), dtype=np.uint8)


class _Stream:
    """A stream of frame batches read on demand, counting every frame it reads."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches = iter(batches)
        self._pending = _NO_FRAMES
        self.frames = 0

    def peek(self) -> np.ndarray | None:
        """The frames read but not yet taken (reading the next batch when none are), None at the end."""
        while len(self._pending) == 0:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self.frames += len(batch)
            self._pending = batch
        return self._pending

    def take(self, count: int) -> np.ndarray:
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def drain(self) -> None:
        """Read (and count) the rest without keeping it."""
        while self.peek() is not None:
            self._pending = _NO_FRAMES


def _aligned_batches(generated: _Stream, reference: _Stream) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Equal-length (generated, reference) batches of the common prefix; both streams end fully counted."""
    while (gen := generated.peek()) is not None and (gt := reference.peek()) is not None:
        count = min(len(gen), len(gt))
        yield generated.take(count), reference.take(count)
    generated.drain()
    reference.drain()
