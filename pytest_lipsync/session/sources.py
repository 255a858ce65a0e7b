"""Scoring each video once per session, and once per content across sessions.

The gate item, the quality item, the ``lipsync_video`` fixture and the helpers may all ask for the same
video: a memo answers them after the first. Across runs, a result cache (pytest's ``config.cache``, or
anything with ``get(key, default)`` / ``set(key, value)``) is keyed by the video's bytes, the settings that
move numbers and the weights' SHA-256, so an unchanged gate replays its numbers without loading a model.
The weights' identity comes from resolving the file (hashing it, memoised with a sidecar), never from
loading it; a :class:`Scorer` is created on the first miss only. No pytest import here.

An entry is replayed only if its content is what this module wrote under that key: it carries the
SHA-256 of its key and its canonical JSON (:func:`_digest`), and an entry whose digest does not match is
scored again and rewritten. This catches a hand edit of ``.pytest_cache`` (one number changed to turn a
failing gate green), an entry copied from a passing video's key to a failing one's, a damaged or
half-written file, and entries of an older format. It is not a signature: whoever can write the cache can
recompute a plain hash, and a keyed HMAC would need a secret kept where that person cannot read it, which
a CI cache restored into the workspace does not have. A gate that must not trust its cache at all runs
with ``--lipsync-no-cache``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_lipsync.errors import LipsyncError, ScoringTimeoutError
from pytest_lipsync.models.verify import file_sha256
from pytest_lipsync.progress import ProgressDisplay
from pytest_lipsync.results import SCHEMA_VERSION, RunRecord, Tally, VideoScore, WeightsRecord
from pytest_lipsync.settings import Settings
from pytest_lipsync.version import __version__

if TYPE_CHECKING:
    from pytest_lipsync.scoring.scorer import Scorer

CACHE_PREFIX = "lipsync/scores"


class ResultCache(Protocol):
    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class Scores(Protocol):
    """Where a gate gets its scores: :class:`ScoreService` scores, ``report_gate.ReportScores`` reads."""

    tally: Tally

    def score(self, path: Path, settings: Settings, reference: Path | None = None) -> VideoScore: ...

    def run_record(self, settings: Settings) -> RunRecord: ...


class ScoreService:
    """Memo, then cache, then a lazily created :class:`Scorer` per settings; set-up errors are remembered."""

    def __init__(self, cache: ResultCache | None = None, progress: ProgressDisplay | None = None) -> None:
        self._cache = cache
        self._progress = progress
        self._memo: dict[tuple[Path, str, Path | None], VideoScore] = {}
        self._scorers: dict[str, Scorer | LipsyncError] = {}
        self._weights: dict[str, tuple[WeightsRecord, ...]] = {}
        self._devices: dict[str, str] = {}
        self.tally = Tally()

    def score(self, path: Path, settings: Settings, reference: Path | None = None) -> VideoScore:
        """The score of ``path`` (with ``reference`` for PSNR/SSIM); set-up problems raise :class:`LipsyncError`."""
        memo_key = (path.resolve(), _identity(settings), reference)
        if memo_key not in self._memo:
            self._memo[memo_key] = self._cached_or_scored(path, settings, reference)
        return self._memo[memo_key]

    def run_record(self, settings: Settings) -> RunRecord:
        """What produced this session's numbers, known without loading a model when everything was cached."""
        return RunRecord(
            tool_version=__version__,
            settings=settings.result_settings(),
            weights=self.weights(settings),
            device=self._devices.get(_identity(settings), settings.device),
        )

    def weights(self, settings: Settings) -> tuple[WeightsRecord, ...]:
        identity = _identity(settings)
        if identity not in self._weights:
            from pytest_lipsync.models.resolve import resolve_run_weights

            self._weights[identity] = resolve_run_weights(settings).records()
        return self._weights[identity]

    def _cached_or_scored(self, path: Path, settings: Settings, reference: Path | None) -> VideoScore:
        key = self._cache_key(path, settings, reference) if self._cache is not None and path.is_file() else None
        replayed = self._replay(key, path, settings)
        if replayed is not None:
            self.tally = replace(self.tally, replayed=self.tally.replayed + 1)
            return replayed
        scorer = self._scorer(settings)
        if self._progress is None:
            result = scorer.score(path, reference=reference) if reference is not None else scorer.score(path)
        else:
            try:
                result = scorer.score(path, reference=reference, progress=self._progress)
            finally:
                self._progress.close()
        self.tally = replace(self.tally, scored=self.tally.scored + 1)
        if key is not None and self._cache is not None and not _depends_on_the_machine(result):
            entry = {"score": result.to_dict(), "device": self._devices[_identity(settings)], "path": str(path)}
            self._cache.set(key, {**entry, "digest": _digest(key, entry)})
        return result

    def _replay(self, key: str | None, path: Path, settings: Settings) -> VideoScore | None:
        """A cached result, or ``None``; an entry that does not parse or whose digest does not match its key
        and content is ignored (and rewritten by the caller)."""
        if key is None or self._cache is None:
            return None
        entry = self._cache.get(key, None)
        if not isinstance(entry, dict):
            return None
        content = {name: value for name, value in entry.items() if name != "digest"}
        if entry.get("digest") != _digest(key, content):
            return None
        try:
            score = _relocated(VideoScore.from_dict(entry["score"]), str(entry["path"]), str(path))
            self._devices.setdefault(_identity(settings), str(entry["device"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return score

    def _cache_key(self, path: Path, settings: Settings, reference: Path | None) -> str:
        identity = {
            "schema": SCHEMA_VERSION,
            "video": file_sha256(path),
            "reference": None if reference is None or not reference.is_file() else file_sha256(reference),
            "settings": settings.result_settings(),
            # Not in the results' settings (a score under them is the same number), but they decide which
            # videos fail: a cached failure must not outlive a raised limit.
            "limits": [settings.max_pixels, settings.max_corrupt_fraction],
            "weights": [w.sha256 for w in self.weights(settings)],
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        return f"{CACHE_PREFIX}/{digest}"

    def _scorer(self, settings: Settings) -> Scorer:
        identity = _identity(settings)
        if identity not in self._scorers:
            from pytest_lipsync.scoring.scorer import Scorer

            try:  # ground truth is paired here (rootdir-relative, [tool.lipsync.pairs]) and passed per video
                scorer = Scorer(settings.replace(reference=None))
            except LipsyncError as exc:
                self._scorers[identity] = exc
                raise
            self._scorers[identity] = scorer
            self._devices[identity] = str(scorer.device)
        made = self._scorers[identity]
        if isinstance(made, LipsyncError):
            raise made
        return made


def _identity(settings: Settings) -> str:
    """A dictionary key for ``settings`` that does not need every field to be hashable."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)


def _digest(key: str, content: dict[str, Any]) -> str:
    """SHA-256 over the cache key and the entry's canonical JSON: binds an entry's numbers to its key."""
    canonical = json.dumps([key, content], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _depends_on_the_machine(result: VideoScore) -> bool:
    """A timeout says how busy the machine was, not what the video is: it is scored again next time."""
    return result.error is not None and result.error.kind == ScoringTimeoutError.kind


def _relocated(score: VideoScore, old: str, new: str) -> VideoScore:
    """A cached score for a file with the same bytes elsewhere: its path, and its error message, name ``new``."""
    error = score.error
    if error is not None:
        error = replace(error, message=error.message.replace(old, new))
    return replace(score, path=new, error=error)
