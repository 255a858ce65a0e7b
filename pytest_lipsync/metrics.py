"""The metrics pytest-lipsync reports: one declaration each, from which the rest is derived.

A metric's direction decides its threshold key (``<name>_max`` when lower is better, ``<name>_min`` when
higher is), which way a regression tolerance points and how a margin is signed; ``limits`` is the range a
threshold on it may take (an SSIM limit of 2 would fail every video). What it needs decides which gate item
judges it: a per-video metric that needs ground truth is judged by the video's ``::quality`` item, one that
needs only the generated video by its ``::lipsync`` item, and a per-dataset metric by the run-level item
``lipsync::<name>``. An opt-in metric loads its networks only when a run asks for it (the ``metrics`` setting,
or a rule on it). Its label heads the columns of every table and ``digits`` says how it is printed. Adding a
metric is a row here and the module that computes it: thresholds (``gate.rules.Thresholds``), their pyproject
keys, variables, flags and options, regression keys, table and report columns and JUnit properties follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytest_lipsync.bounds import Range

Level = Literal["video", "dataset"]
# The gate items that judge metrics: each video's lip-sync and quality items, and the run-level dataset item.
Item = Literal["lipsync", "quality", "dataset"]


@dataclass(frozen=True)
class Metric:
    """One reported number. ``higher_is_better`` is ``None`` for an informational one (no rule can gate it).

    ``needs_reference``: computed against ground truth. ``regional``: measured inside the face tracks when
    ``region = "face"`` (else over whole frames). ``level``: one value per video, or one per run's dataset.
    ``opt_in``: computed only when asked for (its name in ``metrics``, or a threshold or regression rule on it).
    """

    name: str
    label: str
    higher_is_better: bool | None
    needs_reference: bool = False
    regional: bool = False
    level: Level = "video"
    opt_in: bool = False
    limits: Range = Range()
    digits: int = 3

    @property
    def threshold_key(self) -> str | None:
        """The absolute limit's key: ``lse_d_max``, ``lse_c_min``; ``None`` for an informational metric."""
        if self.higher_is_better is None:
            return None
        return f"{self.name}_{'min' if self.higher_is_better else 'max'}"

    @property
    def item(self) -> Item:
        """The gate item that judges it (module docstring)."""
        if self.level == "dataset":
            return "dataset"
        return "quality" if self.needs_reference else "lipsync"


METRICS: tuple[Metric, ...] = (
    Metric("lse_d", "LSE-D", higher_is_better=False),
    Metric("lse_c", "LSE-C", higher_is_better=True),
    Metric("offset", "offset", higher_is_better=None, digits=0),
    Metric("psnr", "PSNR", higher_is_better=True, needs_reference=True, regional=True, digits=2),
    # SSIM lies in [-1, 1].
    Metric("ssim", "SSIM", True, needs_reference=True, regional=True, limits=Range(-1, 1), digits=4),
    # LPIPS is a weighted sum of squared distances of unit vectors: 0 for identical frames, never negative.
    Metric("lpips", "LPIPS", False, needs_reference=True, regional=True, opt_in=True, limits=Range(0), digits=4),
    # CPBD is a share of edges, from 0 to 1; it needs only the generated frames.
    Metric("cpbd", "CPBD", True, regional=True, opt_in=True, limits=Range(0, 1), digits=4),
    # FID is a squared distance between two Gaussians: never negative.
    Metric("fid", "FID", False, needs_reference=True, level="dataset", opt_in=True, limits=Range(0), digits=2),
)

BY_NAME: dict[str, Metric] = {metric.name: metric for metric in METRICS}
LABELS: dict[str, str] = {metric.name: metric.label for metric in METRICS}
DIGITS: dict[str, int] = {metric.name: metric.digits for metric in METRICS}

# Means get at least this many decimals, more where the metric's own table has more (SSIM, LPIPS, CPBD).
MEAN_DIGITS = 3


def formatted(metric: str, value: float, min_digits: int = 0) -> str:
    """``LSE-D 7.123``, ``FID 12.34``: the metric's label and its value to the table's digits, or ``min_digits``
    where that is more (a mean offset of 1.5 frames is not 2)."""
    return f"{LABELS[metric]} {value:.{max(DIGITS[metric], min_digits)}f}"


# Metric name -> True when higher is better, for the metrics a rule can gate.
HIGHER_IS_BETTER: dict[str, bool] = {m.name: m.higher_is_better for m in METRICS if m.higher_is_better is not None}
# What a video's lip-sync item judges, what its quality item (ground truth needed) judges, and the run-level
# item's per-dataset metrics.
SYNC_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.name in HIGHER_IS_BETTER and m.item == "lipsync")
QUALITY_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.name in HIGHER_IS_BETTER and m.item == "quality")
DATASET_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.level == "dataset")
# Per-video metrics: the table's and reports' columns, the JSON's ``metrics``, JUnit properties, baselines.
VIDEO_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.level == "video")
# The metrics with a direction that only ground truth can give a value: a rule on one needs a reference.
REFERENCE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.name in HIGHER_IS_BETTER and m.needs_reference)
# Threshold key -> the metric it limits.
THRESHOLD_METRICS: dict[str, str] = {m.threshold_key: m.name for m in METRICS if m.threshold_key is not None}
# The names the ``metrics`` setting accepts.
OPT_IN: tuple[str, ...] = tuple(m.name for m in METRICS if m.opt_in)
