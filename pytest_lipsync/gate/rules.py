"""Verdicts: does one scored video pass the gate?

Pure data in, pure data out, no pytest: the pytest items, the helpers and a later ``lipsync gate
RESULTS.json`` all judge with these functions, so a merged report gets exactly the verdicts of the pytest
run. Rules come in three kinds: absolute thresholds (``lse_d_max`` ...), regression tolerances against a
baseline (``lse_d = "+0.2"``, ``lse_c = "-3%"``, always in the metric's direction of worsening), and an
allow-list of error kinds that turn an unscorable video into an expected failure. Per-glob overrides replace
any of them for the videos they match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import Field, dataclass, field, fields, make_dataclass, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pytest_lipsync.bounds import bounded, check_bounds
from pytest_lipsync.display import display_name, plural
from pytest_lipsync.metrics import BY_NAME, HIGHER_IS_BETTER, REFERENCE_METRICS, SYNC_METRICS, THRESHOLD_METRICS

if TYPE_CHECKING:
    from pytest_lipsync.results import VideoScore


_TOLERANCE = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")

Outcome = Literal["passed", "failed", "xfailed"]


class _Limits:
    """What every :class:`Thresholds` does; its fields are made from the metric table."""

    if TYPE_CHECKING:  # the fields of the class made below, as the type checker sees them
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

        def __init__(self, **limits: float | None) -> None: ...

        def __getattr__(self, key: str) -> float | None: ...

    def __post_init__(self) -> None:
        check_bounds(self)

    def merged(self, changes: Mapping[str, float]) -> Thresholds:
        return replace(self, **changes)

    def limits(self) -> dict[str, tuple[str, float]]:
        """metric -> (threshold key, limit) for every threshold that is set."""
        return {
            THRESHOLD_METRICS[f.name]: (f.name, value)
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        }


def _thresholds() -> type[_Limits]:
    """Absolute limits, one field per metric with a direction (``lse_d_max``, ``ssim_min``...), in the table's
    order, each accepting the metric's ``limits``; ``None`` means the metric is not gated. A NaN limit would fail
    (or pass) every video, so a limit must be finite."""
    made = make_dataclass(
        "Thresholds",
        [(key, float | None, bounded(None, BY_NAME[metric].limits)) for key, metric in THRESHOLD_METRICS.items()],
        bases=(_Limits,),
        frozen=True,
    )
    made.__module__, made.__doc__ = __name__, _thresholds.__doc__
    return made


if TYPE_CHECKING:
    Thresholds = _Limits
else:
    Thresholds = _thresholds()


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may worsen against its baseline value: absolute (``+0.2``) or relative (``+3%``)."""

    metric: str
    amount: float
    relative: bool

    @classmethod
    def parse(cls, metric: str, raw: object) -> Tolerance:
        """``"+0.2"``, ``"-0.3"``, ``"+3%"`` or a bare number; a sign must point where the metric gets worse.

        Raises ``ValueError`` with the reason; the configuration loader adds the key and the file.
        """
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"{metric!r} is not a metric with a direction (one of {', '.join(HIGHER_IS_BETTER)})")
        text = str(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else raw
        match = _TOLERANCE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f'{raw!r} is not a tolerance: write e.g. "{_worse_sign(metric)}0.2" or "{_worse_sign(metric)}3%"'
            )
        sign, number, percent = match.groups()
        if sign and sign != _worse_sign(metric):
            direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
            raise ValueError(
                f"{raw!r} points the wrong way: {metric} is better {direction}, so it worsens by "
                f'"{_worse_sign(metric)}{number}{percent}"'
            )
        amount = float(number)
        if not math.isfinite(amount):  # hundreds of digits read as infinity: no limit at all
            raise ValueError(f"{raw!r} is not a finite tolerance")
        return cls(metric, amount, relative=bool(percent))

    def limit(self, baseline: float) -> float:
        """The worst value still accepted, given the baseline value."""
        step = abs(baseline) * self.amount / 100 if self.relative else self.amount
        return baseline - step if HIGHER_IS_BETTER[self.metric] else baseline + step

    def __str__(self) -> str:
        amount = f"{self.amount:g}{'%' if self.relative else ''}"
        return f"{_worse_sign(self.metric)}{amount}"


@dataclass(frozen=True)
class Override:
    """Rules for the videos whose key matches ``glob`` (matched from the right, as ``pathlib`` does)."""

    glob: str
    thresholds: Mapping[str, float] = field(default_factory=dict)
    regression: Mapping[str, Tolerance] = field(default_factory=dict)
    allow: tuple[str, ...] | None = None
    source: str = "override glob"  # where it was written, for messages: "[tool.lipsync] overrides[0].glob in ..."

    def matches(self, key: str) -> bool:
        return PurePosixPath(key).match(self.glob)


@dataclass(frozen=True)
class Rules:
    """What applies to one video after overrides; ``origins`` says where each rule came from."""

    thresholds: Thresholds = Thresholds()
    regression: Mapping[str, Tolerance] = field(default_factory=dict)
    allow: frozenset[str] = frozenset()
    origins: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRules:
    """The whole gate configuration: global rules and the overrides, in file order (later wins)."""

    thresholds: Thresholds = Thresholds()
    regression: Mapping[str, Tolerance] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()

    def quality_rules(self) -> tuple[str, ...]:
        """The rules on metrics that need ground truth, named as the configuration writes them (``psnr_min``,
        ``regression.ssim``, ``overrides[0].lpips_max``): without ground truth they could judge nothing."""
        names = [key for metric, (key, _) in self.thresholds.limits().items() if metric in REFERENCE_METRICS]
        names += [f"regression.{metric}" for metric in self.regression if metric in REFERENCE_METRICS]
        for number, override in enumerate(self.overrides):
            names += [
                f"overrides[{number}].{key}"
                for key in override.thresholds
                if THRESHOLD_METRICS[key] in REFERENCE_METRICS
            ]
            names += [
                f"overrides[{number}].regression.{metric}"
                for metric in override.regression
                if metric in REFERENCE_METRICS
            ]
        return tuple(names)

    def for_video(self, key: str) -> Rules:
        thresholds, regression, allow = self.thresholds, dict(self.regression), self.allow
        origins: dict[str, str] = {}
        for override in (o for o in self.overrides if o.matches(key)):
            where = f"override {override.glob!r}"
            thresholds = thresholds.merged(override.thresholds)
            regression.update(override.regression)
            origins.update({name: where for name in override.thresholds})
            origins.update({f"regression {metric}": where for metric in override.regression})
            if override.allow is not None:
                allow, origins["allow"] = override.allow, where
        return Rules(thresholds, regression, frozenset(allow), origins)


def unmatched_overrides(rules: GateRules, keys: Collection[str]) -> tuple[str, ...]:
    """A message for each override whose glob matches none of the videos ``keys``: a misspelt glob would
    otherwise leave its videos under the global rules without a word."""
    if not keys:
        return ()
    example = min(keys)
    return tuple(
        f"{override.source} = {override.glob!r} matches none of the {len(keys)} videos, so its rules apply to none "
        f"(a glob matches video keys, paths from the project root such as {example!r}, from the right)"
        for override in rules.overrides
        if not any(override.matches(key) for key in keys)
    )


@dataclass(frozen=True)
class Check:
    """One rule applied to one metric. ``margin`` is the headroom: negative when the rule fails."""

    metric: str
    value: float
    limit: float
    rule: str
    baseline: float | None = None

    @property
    def margin(self) -> float:
        gap = self.value - self.limit
        return gap if HIGHER_IS_BETTER[self.metric] else -gap

    @property
    def passed(self) -> bool:
        return math.isfinite(self.value) and self.margin >= 0


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one video: the checks made, and the reason when it did not pass."""

    key: str
    outcome: Outcome
    checks: tuple[Check, ...] = ()
    reason: str = ""

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)


@dataclass(frozen=True)
class BaselineValues:
    """The baseline's view of one video: its metrics, or why there are none (``missing``: what to do)."""

    metrics: Mapping[str, float] | None = None
    missing: str | None = None


NO_BASELINE = BaselineValues()


def judge(
    score: VideoScore,
    key: str,
    rules: Rules,
    metrics: Collection[str] = SYNC_METRICS,
    baseline: BaselineValues = NO_BASELINE,
) -> Verdict:
    """Apply ``rules`` to the ``metrics`` of one score; every failing rule is reported, not just the first."""
    if score.error is not None:
        reason = f"{score.error.kind}: {score.error.message}"
        allowed = score.error.kind in rules.allow
        if allowed:
            reason = f"{reason} (allowed by {rules.origins.get('allow', 'allow')} = [{score.error.kind!r}])"
        return Verdict(key, "xfailed" if allowed else "failed", reason=reason)
    checks = _threshold_checks(score, rules, metrics) + _regression_checks(score, rules, metrics, baseline)
    if baseline.missing is not None:
        return Verdict(key, "failed", checks, reason=baseline.missing)
    failed = [check for check in checks if not check.passed]
    reason = f"{len(failed)} of {plural(len(checks), 'check')} failed" if failed else ""
    return Verdict(key, "failed" if failed else "passed", checks, reason)


def dataset_item(metric: str) -> str:
    """The name of the run-level item (and verdict) that judges the per-dataset ``metric``: ``lipsync::fid``."""
    return f"lipsync::{metric}"


def judge_dataset(metric: str, value: float, thresholds: Thresholds) -> Verdict:
    """Apply the dataset's threshold on ``metric`` (``fid_max``) to its value; no threshold: passed, unjudged.
    Overrides are per video and baselines per video, so neither applies to a dataset's number."""
    limit = thresholds.limits().get(metric)
    checks = () if limit is None else (Check(metric, value, limit[1], limit[0]),)
    failed = [check for check in checks if not check.passed]
    reason = f"{len(failed)} of {plural(len(checks), 'check')} failed" if failed else ""
    return Verdict(dataset_item(metric), "failed" if failed else "passed", checks, reason)


def format_verdict(verdict: Verdict) -> str:
    """The compact failure text: one row per check (metric, value, limit, baseline, margin, rule)."""
    lines = [display_name(f"{verdict.key}: {verdict.reason}" if verdict.reason else verdict.key)]
    if verdict.checks:
        rows: list[tuple[str, ...]] = [("metric", "value", "limit", "baseline", "margin", "rule", "")]
        rows += [_check_row(check) for check in verdict.checks]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _threshold_checks(score: VideoScore, rules: Rules, metrics: Collection[str]) -> tuple[Check, ...]:
    limits = rules.thresholds.limits()
    return tuple(
        Check(metric, _value(score, metric), limit, _origin(rules, name))
        for metric, (name, limit) in limits.items()
        if metric in metrics
    )


def _regression_checks(
    score: VideoScore, rules: Rules, metrics: Collection[str], baseline: BaselineValues
) -> tuple[Check, ...]:
    if baseline.metrics is None:
        return ()
    checks = []
    for metric, tolerance in rules.regression.items():
        before = baseline.metrics.get(metric)
        if metric in metrics and before is not None and math.isfinite(before):
            rule = _origin(rules, f"regression {metric}", f"regression {metric} {tolerance}")
            checks.append(Check(metric, _value(score, metric), tolerance.limit(before), rule, before))
    return tuple(checks)


def _origin(rules: Rules, name: str, label: str | None = None) -> str:
    where = rules.origins.get(name)
    label = label or name
    return f"{label} ({where})" if where else label


def _value(score: VideoScore, metric: str) -> float:
    return score.metrics.get(metric, math.nan)


def _check_row(check: Check) -> tuple[str, ...]:
    baseline = "-" if check.baseline is None else f"{check.baseline:.3f}"
    status = "ok" if check.passed else "FAIL"
    numbers = (f"{check.value:.3f}", f"{check.limit:.3f}", baseline, f"{check.margin:+.3f}")
    return (check.metric, *numbers, display_name(check.rule), status)


def _worse_sign(metric: str) -> str:
    return "-" if HIGHER_IS_BETTER[metric] else "+"
