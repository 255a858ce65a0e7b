"""One gate run's state: its videos, their scores and verdicts, and what it writes at the end.

The plugin's hooks and items only forward to a :class:`GateSession`; it holds no pytest objects, so the
same logic serves ``lipsync gate``, which gives it a report's videos and scores instead of scoring. Under
xdist every worker has its own session, and the controller's session absorbs the workers' :meth:`payload`
so that the summary, JSON, GitHub summary and baseline are written once, from all results.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pytest_lipsync.baseline import Baseline, BaselineChange, baseline_metrics, check_compatible, load_baseline, missing_file, update_baseline
from pytest_lipsync.config import Layer, LipsyncConfig, resolve
from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.gate import (
    NO_BASELINE,
    QUALITY_METRICS,
    BaselineValues,
    Check,
    GateRules,
    Verdict,
    judge,
    unmatched_overrides,
)
from pytest_lipsync.results import Report, RunRecord, ScoreError, VideoScore, write_json_atomic
from pytest_lipsync.service import ResultCache, Scores, ScoreService, Tally


@dataclass(frozen=True)
class VideoEntry:
    """A video of the gate: its key (path relative to the rootdir, or to its videos root outside it),
    the file, and its matched ground truth (``reference_error`` when matching itself failed)."""

    key: str
    path: Path
    reference: Path | None = None
    reference_error: ScoreError | None = None


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


@dataclass(frozen=True)
class Outputs:
    """What the end of a run wrote, for the terminal summary."""

    json: Path | None = None
    baseline: BaselineChange | None = None
    baseline_path: Path | None = None
    html: Path | None = None


def video_key(path: Path, root: Path, videos_root: Path | None = None) -> str:
    """The stable name of a video: relative to the rootdir, or ``<videos root name>/<relative>`` outside it
    (so a baseline survives moving the videos), or, for a user's own file elsewhere, its absolute path."""
    absolute = path.absolute()
    bases = [(root.absolute(), "")]
    if videos_root is not None:
        bases.append((videos_root.absolute(), videos_root.absolute().name + "/"))
    for base, prefix in bases:
        if absolute.is_relative_to(base):
            return prefix + absolute.relative_to(base).as_posix()
    return absolute.as_posix()


def collect_videos(config: LipsyncConfig) -> tuple[VideoEntry, ...]:
    """Every configured video, sorted by key; each matched with its reference when one is configured."""
    from pytest_lipsync.media.discover import discover_videos

    reference_root = config.path(config.settings.reference)
    tree = _reference_tree(reference_root)
    entries: dict[str, VideoEntry] = {}
    for raw in config.options.videos:
        base, paths = _expand(config.root / Path(raw).expanduser())
        for path in discover_videos(paths):
            key = video_key(path, config.root, base)
            entries.setdefault(key, _with_reference(VideoEntry(key, path), base, tree, config, reference_root))
    return tuple(entries[key] for key in sorted(entries))


def _expand(path: Path) -> tuple[Path, list[Path]]:
    """(videos root, paths) for one ``videos`` value: a directory, a file, or a glob (``**`` recurses)."""
    parts = path.parts
    first_glob = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
    if first_glob is None:
        return (path if path.is_dir() else path.parent), [path]
    base = Path(*parts[:first_glob])
    return base, sorted(Path(p) for p in glob.glob(str(path), recursive=True))


def _reference_tree(root: Path | None) -> Any:
    if root is None:
        return None
    from pytest_lipsync.quality.pairing import ReferenceTree

    return ReferenceTree.scan(root)


def _with_reference(entry: VideoEntry, base: Path, tree: Any, config: LipsyncConfig, root: Path | None) -> VideoEntry:
    if root is None and not config.pairs:
        return entry
    from pytest_lipsync.quality.pairing import match_reference

    try:
        match = match_reference(entry.path, base, tree, config.pairs)
    except LipsyncError as exc:
        return replace(entry, reference_error=ScoreError(exc.kind, exc.message, exc.facts))
    return replace(entry, reference=match.reference)


class GateSession:
    """The run's configuration (resolved lazily, so an inert plugin reads nothing), scores and verdicts.

    ``videos`` and ``service`` replace collecting and scoring: ``lipsync gate`` passes a report's."""

    def __init__(
        self,
        layers: Callable[[], Sequence[Layer]],
        root: Path,
        cache: ResultCache | None,
        *,
        videos: tuple[VideoEntry, ...] | None = None,
        service: Scores | None = None,
    ) -> None:
        self._read_layers = layers
        self._layer_list: Sequence[Layer] | None = None
        self._root = root
        self._config: LipsyncConfig | None = None
        self._collected = videos
        self._videos = videos
        self._baseline: Baseline | None | bool = False
        self._cache = cache
        self._service = service
        self.scores: dict[str, VideoScore] = {}
        self.verdicts: dict[str, Verdict] = {}
        self.run: RunRecord | None = None
        self.tally = Tally()

    def _layers(self) -> Sequence[Layer]:
        if self._layer_list is None:
            self._layer_list = tuple(self._read_layers())
        return self._layer_list

    def start(self, *, check_baseline: bool) -> None:
        """Resolve the configuration now (errors before any test runs) and, on the controller, refuse an
        incomparable baseline before anything is scored."""
        options = self.config.options
        if check_baseline and options.baseline and not options.update_baseline:
            self.baseline()

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
            self._service = ScoreService(None if self.config.options.no_cache else self._cache)
        return self._service

    @property
    def videos(self) -> tuple[VideoEntry, ...]:
        """The videos this run gates: the configured ones, or this CI job's share of them (``shard``)."""
        if self._videos is None:
            self._collected = collect_videos(self.config)
            self._videos = _sharded(self._collected, self.config.options.shard)
        return self._videos

    def unmatched_overrides(self) -> tuple[str, ...]:
        """A warning for each override glob that matches none of the configured videos (every shard's)."""
        self.videos  # noqa: B018 -- lists the videos
        return unmatched_overrides(self.config.gate, [entry.key for entry in self._collected or ()])

    @property
    def with_quality(self) -> bool:
        """Whether every video also has a PSNR/SSIM verdict (ground truth is configured)."""
        return self.config.settings.reference is not None or bool(self.config.pairs)

    def entry(self, path: Path) -> VideoEntry:
        """The gate's entry for ``path``, or a new one keyed relative to the rootdir (a user's own video)."""
        absolute = path.absolute()
        known = next((e for e in self.videos if e.path.absolute() == absolute), None)
        return known or VideoEntry(video_key(path, self._root), path)

    def score(self, path: str | Path, reference: str | Path | None = None) -> VideoScore:
        """Score any video file with the session's settings (what the ``lipsync_scorer`` fixture offers)."""
        entry = self.entry(Path(path))
        return self.score_entry(entry if reference is None else replace(entry, reference=Path(reference)))

    def score_entry(self, entry: VideoEntry, config: LipsyncConfig | None = None) -> VideoScore:
        """Score (or recall) ``entry``, against its reference when it has one, so that the sync item and
        the quality item of a video share one scoring. Recorded for the reports."""
        config = config or self.config
        result = replace(self.service.score(entry.path, config.settings, entry.reference), path=entry.key)
        self.scores[entry.key] = result
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
        self.verdicts[f"{entry.key}::quality" if quality else entry.key] = verdict
        return verdict

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
        return self._baseline  # type: ignore[return-value]

    def payload(self) -> dict[str, Any]:
        """Everything the controller needs from a worker, as plain JSON-able data."""
        return {
            "scores": {key: score.to_dict() for key, score in self.scores.items()},
            "verdicts": {key: _verdict_dict(v) for key, v in self.verdicts.items()},
            "run": None if self.run is None else self.run.to_dict(),
            "tally": [self.tally.scored, self.tally.replayed],
        }

    def absorb(self, payload: dict[str, Any] | None) -> None:
        """Take in a worker's :meth:`payload` (the controller side of xdist)."""
        if not payload:
            return
        self.scores.update({key: VideoScore.from_dict(data) for key, data in payload["scores"].items()})
        self.verdicts.update({key: _verdict_from(data) for key, data in payload["verdicts"].items()})
        if self.run is None and payload["run"] is not None:
            self.run = RunRecord.from_dict(payload["run"])
        scored, replayed = payload["tally"]
        self.tally = Tally(self.tally.scored + scored, self.tally.replayed + replayed)

    def finish(self) -> Outputs:
        """Write the JSON and HTML reports and the baseline (controller only), from every result this run has."""
        options = self.config.options
        json_path, html_path = self.config.path(options.json), self.config.path(options.html)
        ordered = tuple(self.scores[key] for key in sorted(self.scores))
        run = self.run or _empty_run(self.config)
        report = Report(run, ordered, shard=options.shard)
        if json_path is not None:
            write_json_atomic(json_path, report.to_dict())
        baseline = None if options.update_baseline or html_path is None else self.baseline()
        page = None if html_path is None else _write_html(report, html_path, baseline, self.config.gate)
        baseline_path = self.config.path(options.baseline)
        if not options.update_baseline or baseline_path is None:
            return Outputs(json=json_path, html=page)
        self.videos  # noqa: B018 -- collects: a shard's update keeps the other shards' entries
        known = {entry.key for entry in self._collected or ()} | set(self.scores)
        change = update_baseline(baseline_path, run, self.scores, known)
        return Outputs(json=json_path, baseline=change, baseline_path=baseline_path, html=page)

    def means(self) -> dict[str, float]:
        """Dataset means of every metric over the scored videos (a failed video's partial numbers stay out)."""
        values: dict[str, list[float]] = {}
        for score in (score for score in self.scores.values() if score.ok):
            for metric, value in score.metrics.items():
                if math.isfinite(value):
                    values.setdefault(metric, []).append(value)
        return {metric: sum(v) / len(v) for metric, v in values.items()}


def _write_html(report: Report, directory: Path, baseline: Baseline | None, rules: GateRules) -> Path:
    """The HTML report (with changes since ``baseline``), imported only when asked for: it is the one part of
    a run that may load matplotlib."""
    from pytest_lipsync.reports.html import write_report

    return write_report(report, directory, None if baseline is None else baseline_metrics(baseline), rules)


def _sharded(entries: tuple[VideoEntry, ...], shard: str | None) -> tuple[VideoEntry, ...]:
    if shard is None:
        return entries
    from pytest_lipsync.sharding import Shard, select

    chosen = select({entry.key: _size(entry.path) for entry in entries}, Shard.parse(shard))
    return tuple(entry for entry in entries if entry.key in chosen)


def _size(path: Path) -> int:
    """A video's size in bytes; a file that vanished counts as empty (it fails when scored)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return asdict(verdict)


def _verdict_from(data: dict[str, Any]) -> Verdict:
    return Verdict(data["key"], data["outcome"], tuple(Check(**check) for check in data["checks"]), data["reason"])


def _no_reference(entry: VideoEntry) -> str:
    if entry.reference_error is not None:
        return f"{entry.reference_error.kind}: {entry.reference_error.message}"
    return (
        f"no ground truth found for {entry.key}: put it at the same relative path under the reference "
        "directory, or name it in [tool.lipsync.pairs]"
    )


def _empty_run(config: LipsyncConfig) -> RunRecord:
    from pytest_lipsync import __version__

    return RunRecord(__version__, config.settings.result_settings(), (), config.settings.device)

