"""Baseline files: the last accepted numbers, keyed by video, in the results JSON schema.

A baseline is only comparable with a run that used the same scoring settings and the same weights:
anything else would report regressions (or hide them) that come from the set-up, not the videos. So
loading checks both and says what differs; the fix is always to re-create the baseline on purpose.

The file is committed next to the code, so it is written to review well: entries keep metrics, frame count
and duration only (per-run timings, curves and empty fields would make every update a diff), weights are
named by file name and SHA-256 (where they live differs between machines; comparisons use the hash), and
keys are sorted, one video per entry in key order. Files with the full results schema still load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_lipsync.display import display_name
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.rules import BaselineValues
from pytest_lipsync.results import Report, RunRecord, VideoScore, write_json_atomic
from pytest_lipsync.settings import IMPLIED_WHEN_ABSENT

UPDATE_FLAG = "--lipsync-update-baseline"
# What an entry keeps: the metrics the rules compare, and the frame count and duration that tell a reader of
# the diff whether the video itself changed.
ENTRY_FIELDS = ("path", "metrics", "frames", "duration")
LOCK_SECONDS = 60  # an update reads and writes one JSON file: a minute's wait means the lock holder is stuck


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file (``entries`` by video key); ``run`` is what produced it."""

    path: Path
    run: RunRecord
    entries: Mapping[str, VideoScore]

    def values(self, key: str, fix: str = UPDATE_FLAG) -> BaselineValues:
        entry = self.entries.get(key)
        if entry is None:
            return BaselineValues(missing=f"{key} is not in the baseline {self.path}: run with {fix} to add it")
        return BaselineValues(metrics=entry.metrics)


@dataclass(frozen=True)
class BaselineChange:
    """What an update did to the file, by video key."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int

    def describe(self, path: Path) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed)} changed", f"{len(self.removed)} removed"]
        lines = [f"lipsync: baseline {path} written: {', '.join(parts)}, {self.unchanged} unchanged"]
        for label, keys in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            lines += [f"  {label}: {display_name(key)}" for key in keys]
        return "\n".join(lines)


def baseline_metrics(baseline: Baseline) -> dict[str, Mapping[str, float]]:
    """Each video's accepted metrics, for reports that show the change since the baseline."""
    return {key: entry.metrics for key, entry in baseline.entries.items()}


def missing_file(path: Path, fix: str = UPDATE_FLAG) -> BaselineValues:
    """The per-video answer when the configured baseline file does not exist yet."""
    return BaselineValues(missing=f"the baseline file {path} does not exist: run with {fix} to create it")


def load_baseline(path: Path) -> Baseline | None:
    """The baseline at ``path``; ``None`` when there is no file yet. A damaged file, or a folder in its place,
    is a :class:`ConfigError`."""
    if path.is_dir():
        raise ConfigError(
            "is a directory, not a baseline file",
            path=path,
            hint="Point baseline at a JSON file, e.g. lipsync-baseline.json",
        )
    if not path.is_file():
        return None
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"is not a readable baseline ({exc})",
            path=path,
            hint=f"Restore it from version control, or delete it and run with {UPDATE_FLAG}",
        ) from None
    return Baseline(path, report.run, {video.path: video for video in report.videos})


def check_compatible(baseline: Baseline, run: RunRecord, fix: str = UPDATE_FLAG) -> None:
    """Refuse to compare with a baseline made with other settings or weights, saying which differ."""
    differences = run_differences(baseline.run, run)
    if differences:
        raise ConfigError(
            "was made with other scoring settings or weights than this run, so its numbers are not "
            f"comparable: {'; '.join(differences)}",
            path=baseline.path,
            hint=f"Score with the baseline's settings and weights, or re-create the baseline with {fix}",
        )


def update_baseline(
    path: Path, run: RunRecord, scores: Mapping[str, VideoScore], known: Collection[str]
) -> BaselineChange:
    """Write the baseline atomically from ``scores`` (key -> score), keeping old entries for known videos
    that were not scored this time (deselected with ``-k``), dropping entries for videos that are gone.
    Unscorable videos keep their old entry, if any: a broken file must not erase its accepted numbers.

    The file is read and written under ``<baseline>.lock``: two runs updating it at once (CI jobs sharing a
    workspace, shards) would otherwise each write what they read before the other wrote, and lose entries."""
    with _locked(path):
        old = load_baseline(path)
        previous = dict(old.entries) if old is not None else {}
        fresh = {key: replace(score, path=key) for key, score in scores.items() if score.ok}
        kept = {key: entry for key, entry in previous.items() if key in known and key not in fresh}
        entries = {**kept, **fresh}
        write_json_atomic(path, baseline_document(run, [entries[key] for key in sorted(entries)]), sort_keys=True)
    return BaselineChange(
        added=tuple(sorted(set(fresh) - set(previous))),
        changed=tuple(sorted(k for k in fresh if k in previous and previous[k].metrics != fresh[k].metrics)),
        removed=tuple(sorted(set(previous) - set(entries))),
        unchanged=sum(1 for k in entries if k in previous and previous[k].metrics == entries[k].metrics),
    )


def baseline_document(run: RunRecord, entries: Sequence[VideoScore]) -> dict[str, Any]:
    """The results schema, cut down to what a baseline uses and free of this machine's paths."""
    weights = tuple(replace(record, path=Path(record.path).name) for record in run.weights)
    document = Report(replace(run, weights=weights), tuple(entries)).to_dict()
    document["videos"] = [{name: video[name] for name in ENTRY_FIELDS} for video in document["videos"]]
    return document


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` (an OS lock, released if the process dies) for a read-modify-write of ``path``."""
    from filelock import FileLock, Timeout

    lock = Path(f"{path}.lock")
    try:
        with FileLock(lock, timeout=LOCK_SECONDS):
            yield
    except Timeout:
        raise ConfigError(
            f"is locked by another run updating it (waited {LOCK_SECONDS} s for {lock})",
            path=path,
            hint="Wait for the other run to finish, or delete the lock file if no run is updating the baseline",
        ) from None


def run_differences(
    before: RunRecord, now: RunRecord, first: str = "in the baseline", second: str = "now"
) -> list[str]:
    """What makes two runs' numbers incomparable: settings that move numbers, and weights by SHA-256.
    ``first`` and ``second`` say where each run's value was found."""
    # A run without a key ran with what the key's absence implies (a faster option is recorded only when used).
    settings = _differences(
        {**IMPLIED_WHEN_ABSENT, **before.settings}, {**IMPLIED_WHEN_ABSENT, **now.settings}, "{} =", repr, first, second
    )
    weights_before, weights_now = ({w.name: w.sha256 for w in run.weights} for run in (before, now))
    return settings + _differences(
        weights_before, weights_now, "{} weights SHA-256", lambda sha: sha or "none", first, second
    )


def _differences(
    before: Mapping[str, Any], now: Mapping[str, Any], label: str, show: Callable[[Any], str], first: str, second: str
) -> list[str]:
    return [
        f"{label.format(key)} {show(before.get(key))} {first}, {show(now.get(key))} {second}"
        for key in sorted(set(before) | set(now))
        if before.get(key) != now.get(key)
    ]
