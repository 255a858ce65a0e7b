"""One gate run's state: its videos, their scores and verdicts, and what it writes at the end.

The plugin's hooks and items only forward to a :class:`GateSession`; it holds no pytest objects, so the
same logic serves ``lipsync gate``, which gives it a report's videos and scores instead of scoring. Under
xdist every worker has its own session, and the controller's session absorbs the workers' :meth:`payload`
so that the summary, JSON, GitHub summary and baseline are written once, from all results. Workers send
their results test by test, not at their end, so that a worker that dies (a native crash, the out-of-memory
killer) loses only the video it was scoring, which the controller then records as ``worker_crashed``
(:meth:`lost`): every collected video ends in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pytest_lipsync.config.resolution import Layer, LipsyncConfig, resolve
from pytest_lipsync.display import plural
from pytest_lipsync.errors import ConfigError, WorkerCrashedError
from pytest_lipsync.gate.baseline import (
    Baseline,
    baseline_metrics,
    check_compatible,
    load_baseline,
    missing_file,
    update_baseline,
)
from pytest_lipsync.gate.rules import (
    NO_BASELINE,
    BaselineValues,
    Check,
    GateRules,
    Verdict,
    dataset_item,
    judge,
    judge_dataset,
    unmatched_overrides,
)
from pytest_lipsync.metrics import DATASET_METRICS, LABELS, QUALITY_METRICS, THRESHOLD_METRICS
from pytest_lipsync.progress import ProgressDisplay
from pytest_lipsync.reports.outcome import Outputs, RunSummary
from pytest_lipsync.results import Report, RunRecord, ScoreError, Tally, VideoScore, write_json_atomic
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.session.sources import ResultCache, Scores, ScoreService
from pytest_lipsync.session.videos import Unmatched, configured_videos, select_shard, video_key

_CRASH_HINT = (
    "Run it without xdist (-p no:xdist -k ...) to see the crash; a worker killed for memory needs more of it "
    "(fewer workers with -n, or a larger machine)"
)


@dataclass(frozen=True)
class LipsyncVideo:
    """The ``lipsync_video`` fixture's value: a gate video and the configuration its test runs with."""

    entry: VideoEntry
    config: LipsyncConfig

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def key(self) -> str:
        return self.entry.key

    def __fspath__(self) -> str:
        return str(self.entry.path)


class GateSession:
    """The run's configuration (resolved lazily, so an inert plugin reads nothing), scores and verdicts.

    ``videos`` and ``service`` replace collecting and scoring: ``lipsync gate`` passes a report's, and
    ``report_quality``, whether that report holds PSNR/SSIM."""

    def __init__(
        self,
        layers: Callable[[], Sequence[Layer]],
        root: Path,
        cache: ResultCache | None,
        *,
        videos: tuple[VideoEntry, ...] | None = None,
        service: Scores | None = None,
        report_quality: bool | None = None,
        dataset: Mapping[str, Any] | None = None,
    ) -> None:
        self._read_layers = layers
        self._layer_list: Sequence[Layer] | None = None
        self._root = root
        self._config: LipsyncConfig | None = None
        self._collected = videos
        self._videos = videos
        self._unmatched: tuple[Unmatched, ...] = ()
        self._baseline: Baseline | Literal[False] | None = False  # False: not loaded yet
        self._cache = cache
        self._service = service
        self._report_quality = report_quality
        self.scores: dict[str, VideoScore] = {}
        # The per-dataset metrics' sections (``{"fid": {...}}``): computed by the run-level item, or a report's.
        self.dataset: dict[str, Any] = dict(dataset or {})
        self._report_dataset = dataset is not None or service is not None
        self._unsent_dataset = False
        self.verdicts: dict[str, Verdict] = {}
        self.run: RunRecord | None = None
        self.tally = Tally()
        # What :meth:`payload` has not sent yet (an xdist worker's side).
        self._unsent_scores: set[str] = set()
        self._unsent_verdicts: set[str] = set()
        self._sent_tally = Tally()
        self._run_sent = False
        # Shown while a video is scored (a front-end sets it before the first score; None: silent).
        self.progress: ProgressDisplay | None = None

    def _layers(self) -> Sequence[Layer]:
        if self._layer_list is None:
            self._layer_list = tuple(self._read_layers())
        return self._layer_list

    def start(self, *, check_baseline: bool, list_videos: bool = False) -> None:
        """Resolve the configuration now (errors before any test runs) and, on the controller, refuse outputs
        that cannot be written and an incomparable baseline before anything is scored. ``list_videos``: the
        run gates the videos, so list them now too: a missing folder is named before weights are looked for."""
        options = self.config.options
        if check_baseline:
            self._check_outputs()
        if list_videos:
            self.videos  # noqa: B018 -- lists them, raising for a path that does not exist
        self._check_quality_rules()
        if not self.with_quality:
            self.config.settings.refuse_without_ground_truth(
                'Set reference = "DIR" in [tool.lipsync] (--lipsync-reference DIR) or name ground truth in '
                "[tool.lipsync.pairs]"
            )
        self._check_dataset_metrics()
        if check_baseline and options.baseline and not options.update_baseline:
            self.baseline()

    def _check_outputs(self) -> None:
        from pytest_lipsync.outputs import check_file_output, check_folder_output

        options = self.config.options
        json_path, html_path, baseline_path = (
            self.config.path(p) for p in (options.json, options.html, options.baseline)
        )
        if json_path is not None:
            check_file_output(json_path, "the results JSON")
        if html_path is not None:
            check_folder_output(html_path, "the HTML report")
        if baseline_path is not None and options.update_baseline:
            check_file_output(baseline_path, "the baseline")

    def _check_quality_rules(self) -> None:
        """A PSNR/SSIM rule where no video has ground truth would judge nothing, and pass: refuse it."""
        rules = self.config.gate.quality_rules()
        if not rules or self.with_quality:
            return
        named = ", ".join(self._written_as(rule) for rule in rules)
        judged = {THRESHOLD_METRICS.get(rule.rpartition(".")[2]) or rule.rpartition(".")[2] for rule in rules}
        what = "PSNR/SSIM" if judged <= {"psnr", "ssim"} else "/".join(LABELS[m] for m in LABELS if m in judged)
        if self._report_quality is None:
            raise ConfigError(
                f"{named} would judge {what} against ground truth, but none is configured",
                hint='Set reference = "DIR" in [tool.lipsync] (--lipsync-reference DIR) or name each video\'s ground '
                "truth in [tool.lipsync.pairs]; or remove the rule",
            )
        raise ConfigError(
            f"{named} would judge {what} against ground truth, but the report holds none (its videos were "
            "scored without ground truth) and none is configured",
            hint='Score the videos with ground truth (reference = "DIR" or [tool.lipsync.pairs]) and gate that report, '
            "or remove the rule",
        )

    def _check_dataset_metrics(self) -> None:
        """A shard holds part of the dataset, and FID is not a sum or mean over parts: refuse to judge it there."""
        shard = self.config.options.shard
        on = [name for name in DATASET_METRICS if self.config.settings.computes(name)]
        if shard is None or not on:
            return
        names = ", ".join(LABELS[name] for name in on)
        raise ConfigError(
            f"{names} is computed over the whole dataset (metrics or a {on[0]}_max threshold turned it on), and this "
            f"run gates shard {shard}: the shards' values are no parts of the dataset's, nor do they add up to it",
            hint=f"Compute it in one job over all the videos, without a shard (`pytest -k {on[0]}` runs only its "
            f"item), and turn it off in the shard jobs (LIPSYNC_METRICS and LIPSYNC_{on[0].upper()}_MAX= empty)",
        )

    def dataset_verdict(self, metric: str) -> Verdict:
        """Judge the per-dataset ``metric`` (``fid_max``): computed here, over every video of the run that has
        ground truth, from the files alone (``scoring.dataset``), or read from the report being gated."""
        if metric not in self.dataset:
            self.dataset[metric] = self._dataset_section(metric)
            self._unsent_dataset = True
        section = self.dataset[metric]
        if section.get("value") is None:  # it could not be computed: the section says why
            error = section.get("error") or {}
            reason = f"{error.get('kind', 'error')}: {error.get('message', f'no {LABELS[metric]} was computed')}"
            verdict = Verdict(dataset_item(metric), "failed", reason=reason)
        else:
            verdict = judge_dataset(metric, float(section["value"]), self.config.gate.thresholds)
        self.verdicts[verdict.key] = verdict
        self._unsent_verdicts.add(verdict.key)
        return verdict

    def dataset_value(self, metric: str) -> float:
        """The per-dataset ``metric`` of this run's videos (computed once, as its item computes it)."""
        self.dataset_verdict(metric)
        value = self.dataset[metric].get("value")
        return math.nan if value is None else float(value)

    def _dataset_section(self, metric: str) -> dict[str, Any]:
        if self._report_dataset:
            raise ConfigError(
                f"{self._written_as(f'{metric}_max')} judges the {LABELS[metric]} of the whole dataset, and the report "
                f"holds none: it was merged from shards (whose {LABELS[metric]}s do not add up to the dataset's) or "
                f"scored without {metric}",
                hint=f"Score all the videos in one run with {metric} on (lipsync score --metrics {metric} --json, or "
                f"one pytest run without --lipsync-shard) and gate that report, or remove the threshold",
            )
        from pytest_lipsync.scoring.dataset import dataset_fid

        pairs = [(entry.path, entry.reference) for entry in self.videos if entry.reference is not None]
        if not pairs:
            raise ConfigError(
                f"{LABELS[metric]} compares generated frames with ground truth, and none of the "
                f"{plural(len(self.videos), 'video')} has any",
                hint='Set reference = "DIR" in [tool.lipsync] or name ground truth in [tool.lipsync.pairs]',
            )
        return dataset_fid(pairs, self.config.settings).to_json()

    def _written_as(self, rule: str) -> str:
        """A rule of :meth:`GateRules.quality_rules` as its user wrote it: the key and the source that set it."""
        head, _, metric = rule.partition(".")
        for layer in reversed(self._layers()):
            values = layer.values
            if head == "regression" and metric in (values.get("regression") or {}):
                return layer.name(rule)
            if head.startswith("overrides[") and "overrides" in values:
                return layer.name(rule)
            if rule in values:
                return layer.name(rule)
            if rule in (values.get("thresholds") or {}):
                return layer.name(f"thresholds.{rule}")
        return rule

    @property
    def config(self) -> LipsyncConfig:
        if self._config is None:
            self._config = resolve(self._layers(), self._root)
        return self._config

    def config_with(self, marker: Layer | None) -> LipsyncConfig:
        """The configuration with a test's marker arguments on top (the highest precedence)."""
        return self.config if marker is None else resolve([*self._layers(), marker], self._root)

    @property
    def service(self) -> Scores:
        if self._service is None:
            self._service = ScoreService(None if self.config.options.no_cache else self._cache, self.progress)
        return self._service

    @property
    def videos(self) -> tuple[VideoEntry, ...]:
        """The videos this run gates: the configured ones, or this CI job's share of them (``shard``)."""
        if self._videos is None:
            listing = configured_videos(self.config)
            self._collected = listing.entries
            self._unmatched = () if self.config.options.allow_no_videos else listing.unmatched
            self._videos = select_shard(self._collected, self.config.options.shard)
        return self._videos

    def unmatched_overrides(self) -> tuple[str, ...]:
        """A warning for each override glob that matches none of the configured videos (every shard's)."""
        self.videos  # noqa: B018 -- lists the videos
        return unmatched_overrides(self.config.gate, [entry.key for entry in self._collected or ()])

    @property
    def unmatched(self) -> tuple[Unmatched, ...]:
        """The configured folders and globs that hold no video: each fails the run, unless ``allow_no_videos``."""
        self.videos  # noqa: B018 -- lists them
        return self._unmatched

    @property
    def collected(self) -> tuple[str, ...]:
        """The keys of every configured video, all shards' (what a report must account for)."""
        self.videos  # noqa: B018 -- collects
        return tuple(entry.key for entry in self._collected or ())

    @property
    def with_quality(self) -> bool:
        """Whether every video also has a PSNR/SSIM verdict: ground truth is configured, or the report being
        gated holds PSNR/SSIM (its videos were compared with ground truth when they were scored)."""
        return bool(self._report_quality) or self.config.settings.reference is not None or bool(self.config.pairs)

    def entry(self, path: Path) -> VideoEntry:
        """The gate's entry for ``path``, or a new one keyed relative to the rootdir (a user's own video)."""
        absolute = path.absolute()
        known = next((e for e in self.videos if e.path.absolute() == absolute), None)
        return known or VideoEntry(video_key(path, self._root), path)

    def score(self, path: str | Path, reference: str | Path | None = None) -> VideoScore:
        """Score any video file with the session's settings (what the ``lipsync_scorer`` fixture offers)."""
        entry = self.entry(Path(path))
        return self.score_entry(entry if reference is None else entry.with_reference(Path(reference)))

    def score_entry(self, entry: VideoEntry, config: LipsyncConfig | None = None) -> VideoScore:
        """Score (or recall) ``entry``, against its reference when it has one, so that the sync item and
        the quality item of a video share one scoring. Recorded for the reports."""
        config = config or self.config
        result = replace(self.service.score(entry.path, config.settings, entry.reference), path=entry.key)
        self.scores[entry.key] = result
        self._unsent_scores.add(entry.key)
        if self.run is None and config.settings == self.config.settings:
            self.run = self.service.run_record(config.settings)
        self.tally = self.service.tally
        return result

    def verdict(self, entry: VideoEntry, metrics: Sequence[str], config: LipsyncConfig | None = None) -> Verdict:
        """Judge ``entry`` on ``metrics``; the quality metrics need a matched reference."""
        config = config or self.config
        quality = bool(set(metrics) & set(QUALITY_METRICS))
        if quality and entry.reference is None:
            verdict = Verdict(entry.key, "failed", reason=_no_reference(entry))
        else:
            rules = config.gate.for_video(entry.key)
            verdict = judge(self.score_entry(entry, config), entry.key, rules, metrics, self.baseline_values(entry.key))
        name = f"{entry.key}::quality" if quality else entry.key
        self.verdicts[name] = verdict
        self._unsent_verdicts.add(name)
        return verdict

    def lost(self, key: str, cause: str) -> None:
        """Record that the process scoring ``key`` died before reporting it (``cause``: the runner's words).
        Unless an earlier test already brought its score, the video's entry says so and its verdict fails."""
        if key in self.scores:
            return
        error = WorkerCrashedError(
            f"the pytest-xdist worker scoring it died ({cause}), so it has no score", path=key, hint=_CRASH_HINT
        )
        self.scores[key] = VideoScore(key, error=ScoreError.from_error(error))
        self.verdicts[key] = Verdict(key, "failed", reason=f"{error.kind}: {error.message}")

    def baseline_values(self, key: str) -> BaselineValues:
        """What the configured baseline says about ``key``; nothing while updating it."""
        path = self.config.path(self.config.options.baseline)
        if path is None or self.config.options.update_baseline:
            return NO_BASELINE
        baseline = self.baseline()
        return missing_file(path) if baseline is None else baseline.values(key)

    def baseline(self) -> Baseline | None:
        """The baseline file, loaded once and checked against this run's settings and weights."""
        if self._baseline is False:
            path = self.config.path(self.config.options.baseline)
            loaded = None if path is None else load_baseline(path)
            if loaded is not None and not self.config.options.update_baseline:
                check_compatible(loaded, self.service.run_record(self.config.settings))
            self._baseline = loaded
            return loaded
        return self._baseline

    def payload(self) -> dict[str, Any]:
        """What this worker learnt since the last payload, as plain JSON-able data (empty when nothing): the
        scores and verdicts recorded since, the run record once, and how much the tally grew."""
        tally = [self.tally.scored - self._sent_tally.scored, self.tally.replayed - self._sent_tally.replayed]
        run = None if self.run is None or self._run_sent else self.run.to_dict()
        if not (self._unsent_scores or self._unsent_verdicts or run or any(tally) or self._unsent_dataset):
            return {}
        payload = {
            "scores": {key: self.scores[key].to_dict() for key in sorted(self._unsent_scores)},
            "verdicts": {key: _verdict_dict(self.verdicts[key]) for key in sorted(self._unsent_verdicts)},
            "run": run,
            "tally": tally,
            "dataset": self.dataset if self._unsent_dataset else {},
        }
        self._unsent_dataset = False
        self._unsent_scores.clear()
        self._unsent_verdicts.clear()
        self._sent_tally, self._run_sent = self.tally, self.run is not None
        return payload

    def absorb(self, payload: dict[str, Any] | None) -> None:
        """Take in a worker's :meth:`payload` (the controller side of xdist)."""
        if not payload:
            return
        self.scores.update({key: VideoScore.from_dict(data) for key, data in payload["scores"].items()})
        self.verdicts.update({key: _verdict_from(data) for key, data in payload["verdicts"].items()})
        if self.run is None and payload["run"] is not None:
            self.run = RunRecord.from_dict(payload["run"])
        self.dataset.update(payload.get("dataset") or {})
        scored, replayed = payload["tally"]
        self.tally = Tally(self.tally.scored + scored, self.tally.replayed + replayed)

    def finish(self) -> Outputs:
        """Write the JSON and HTML reports and the baseline (controller only), from every result this run has."""
        options = self.config.options
        json_path, html_path = self.config.path(options.json), self.config.path(options.html)
        ordered = tuple(self.scores[key] for key in sorted(self.scores))
        run = self.run or _empty_run(self.config)
        dataset = self.dataset or None
        report = Report(run, ordered, shard=options.shard, collected=self._accounted_for(), dataset=dataset)
        if json_path is not None:
            write_json_atomic(json_path, report.to_dict())
        baseline = None if options.update_baseline or html_path is None else self.baseline()
        page = None if html_path is None else _write_html(report, html_path, baseline, self.config.gate)
        baseline_path = self.config.path(options.baseline)
        if not options.update_baseline or baseline_path is None:
            return Outputs(json=json_path, html=page)
        known = set(self._accounted_for()) | set(self.scores)  # a shard's update keeps the other shards' entries
        change = update_baseline(baseline_path, run, self.scores, known)
        return Outputs(json=json_path, baseline=change, baseline_path=baseline_path, html=page)

    def _accounted_for(self) -> tuple[str, ...]:
        """The videos the report must account for: every configured one when the run listed them (the gate's
        items, the ``lipsync_video`` fixture), else the ones scored (named test files only, whose videos
        folder may not even exist)."""
        return self.collected if self._collected is not None else tuple(sorted(self.scores))

    def summary(self, outputs: Outputs | None = None) -> RunSummary:
        """What the reports show of this run so far (``outputs``: what :meth:`finish` wrote)."""
        scores = tuple(self.scores[key] for key in sorted(self.scores))
        dataset = {metric: float(section["value"]) for metric, section in self.dataset.items() if _has_value(section)}
        return RunSummary(scores, dict(self.verdicts), self.tally, self.run, outputs, dataset)


def _write_html(report: Report, directory: Path, baseline: Baseline | None, rules: GateRules) -> Path:
    """The HTML report (with changes since ``baseline``), imported only when asked for: it is the one part of
    a run that may load matplotlib."""
    from pytest_lipsync.reports.html import write_report

    return write_report(report, directory, None if baseline is None else baseline_metrics(baseline), rules)


def _has_value(section: object) -> bool:
    """A per-dataset section that holds its number (one that could not be computed holds its error instead)."""
    return isinstance(section, Mapping) and isinstance(section.get("value"), (int, float))


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return asdict(verdict)


def _verdict_from(data: dict[str, Any]) -> Verdict:
    return Verdict(data["key"], data["outcome"], tuple(Check(**check) for check in data["checks"]), data["reason"])


def _no_reference(entry: VideoEntry) -> str:
    """Why ``entry`` has no quality verdict's ground truth: the pairing's reason, or (for a report's video,
    whose pairing is not recorded) where to give it."""
    if entry.reference_error is not None:
        return f"{entry.reference_error.kind}: {entry.reference_error.message}"
    return (
        f"no ground truth found for {entry.key}: put it at the same relative path under the reference "
        f'directory, or name it in [tool.lipsync.pairs]: "{entry.key}" = "<ground-truth file>"'
    )


def _empty_run(config: LipsyncConfig) -> RunRecord:
    from pytest_lipsync.version import __version__

    return RunRecord(__version__, config.settings.result_settings(), (), config.settings.device)
