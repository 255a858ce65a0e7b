"""The metrics pytest-lipsync reports: one declaration each, from which the rest is derived.

A metric's direction decides its threshold key (``<name>_max`` when lower is better, ``<name>_min`` when
higher is), which way a regression tolerance points and how a margin is signed; whether it needs ground
truth decides which gate item judges it (the video's ``::lipsync`` item or its ``::quality`` item); its
label heads the columns of every table. Adding a metric is a row here and the module that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One reported number. ``higher_is_better`` is ``None`` for an informational one (no rule can gate it)."""

    name: str
    label: str
    higher_is_better: bool | None
    needs_reference: bool = False

    @property
    def threshold_key(self) -> str | None:
        """The absolute limit's key: ``lse_d_max``, ``lse_c_min``; ``None`` for an informational metric."""
        if self.higher_is_better is None:
            return None
        return f"{self.name}_{'min' if self.higher_is_better else 'max'}"


METRICS: tuple[Metric, ...] = (
    Metric("lse_d", "LSE-D", higher_is_better=False),
    Metric("lse_c", "LSE-C", higher_is_better=True),
    Metric("offset", "offset", higher_is_better=None),
    Metric("psnr", "PSNR", higher_is_better=True, needs_reference=True),
    Metric("ssim", "SSIM", higher_is_better=True, needs_reference=True),
)

LABELS: dict[str, str] = {metric.name: metric.label for metric in METRICS}
# Metric name -> True when higher is better, for the metrics a rule can gate.
HIGHER_IS_BETTER: dict[str, bool] = {m.name: m.higher_is_better for m in METRICS if m.higher_is_better is not None}
# What a video's lip-sync item judges, and what its quality item (ground truth needed) judges.
SYNC_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.name in HIGHER_IS_BETTER and not m.needs_reference)
QUALITY_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.name in HIGHER_IS_BETTER and m.needs_reference)
# Threshold key -> the metric it limits.
THRESHOLD_METRICS: dict[str, str] = {m.threshold_key: m.name for m in METRICS if m.threshold_key is not None}
