"""FID of a run's dataset: every sampled generated frame of the videos that have ground truth, against every
sampled frame of their ground truths, as one pair of Gaussians (docs/quality.md#lpips-fid-and-cpbd).

FID is not a mean of per-video values: the two Gaussians are fitted to all frames together, so it is computed
once per run, here, and judged by the run-level gate item ``lipsync::fid``. Everything it needs is read from
the files, never from what other gate items computed: whichever process runs it (an xdist worker) gets the
same number. Features stream into running sums (memory is one 2048x2048 matrix per side, whatever the number
of frames); a ground truth's statistics come from the statistics cache when it holds that file, sampling and
network (:class:`~pytest_lipsync.quality.fid.StatisticsCache`), so a re-run only embeds the generated frames.
A ground-truth file paired with several videos counts once: the reference set is the files, as pytorch-fid
reads a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lipsync.quality.fid import (
    FrameSampling,
    RunningStatistics,
    StatisticsCache,
    default_cache,
    frechet_distance,
    reference_statistics,
    video_statistics,
)
from pytest_lipsync.results import WeightsRecord
from pytest_lipsync.settings import Settings


@dataclass(frozen=True)
class DatasetFid:
    """The run's FID and what it was computed from, as the report's ``dataset.fid`` section records it."""

    value: float
    videos: int
    references: int
    generated_frames: int
    reference_frames: int
    regularised: bool
    sampling: FrameSampling
    weights: WeightsRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "videos": self.videos,
            "references": self.references,
            "generated_frames": self.generated_frames,
            "reference_frames": self.reference_frames,
            "regularised": self.regularised,
            "sampling": self.sampling.to_json(),
            "weights": self.weights.to_dict(),
        }


def sampling_of(settings: Settings) -> FrameSampling:
    """The frames FID reads, from the ``fid_stride`` and ``fid_max_frames`` settings."""
    return FrameSampling(settings.fid_stride, settings.fid_max_frames)


def dataset_fid(
    pairs: Sequence[tuple[Path, Path]], settings: Settings, *, cache: StatisticsCache | None = None
) -> DatasetFid:
    """FID of the generated videos of ``pairs`` (generated, ground truth) against their ground truths.

    Resolves (fetching on first use) and loads pytorch-fid's Inception on the settings' device; a missing file
    raises its :class:`WeightsError`, a video that cannot be read its :class:`VideoError`."""
    from pytest_lipsync.models.registry import FID_INCEPTION
    from pytest_lipsync.models.resolve import resolve_weights
    from pytest_lipsync.quality.fid import load_inception_features
    from pytest_lipsync.scoring.scorer import resolve_device

    weights = resolve_weights(FID_INCEPTION, offline=settings.offline)
    features = load_inception_features(weights, str(resolve_device(settings.device)))
    sampling = sampling_of(settings)
    cache = cache or default_cache()
    generated, reference = RunningStatistics(), RunningStatistics()
    for video, _ in pairs:
        generated.update(RunningStatistics.of(video_statistics(video, features, sampling, limits=settings.limits)))
    truths = list(dict.fromkeys(truth.resolve() for _, truth in pairs))
    for truth in truths:
        statistics = reference_statistics(truth, features, sampling, cache=cache, limits=settings.limits)
        reference.update(RunningStatistics.of(statistics))
    result = frechet_distance(generated.statistics(), reference.statistics())
    return DatasetFid(
        result.value,
        len(pairs),
        len(truths),
        result.generated_frames,
        result.reference_frames,
        result.regularised,
        sampling,
        weights.record(),
    )
