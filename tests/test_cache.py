"""The result cache replays only entries it wrote itself for that key: an edited entry, or one copied from
another video's key, is scored again. A stand-in Scorer gives each video a fixed score; nothing is decoded."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.results import VideoScore
from pytest_lipsync.session.sources import ScoreService
from pytest_lipsync.settings import Settings

LSE_D = {"failing.mp4": 9.0, "passing.mp4": 5.0}


class _Scorer:
    """Scores by file name; counts nothing itself (the service's tally does)."""

    device = "cpu"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def score(self, path: Path, reference: Path | None = None) -> VideoScore:
        return VideoScore(path=str(path), metrics={"lse_d": LSE_D[path.name], "lse_c": 6.0, "offset": 0.0})


class _Cache(dict[str, Any]):
    """pytest's ``config.cache`` interface, with values round-tripped through JSON as pytest stores them."""

    def get(self, key: str, default: Any) -> Any:  # type: ignore[override]  # pytest's Cache.get, not dict.get's overloads
        return copy.deepcopy(super().get(key, default))

    def set(self, key: str, value: Any) -> None:
        self[key] = json.loads(json.dumps(value))


@pytest.fixture
def videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path, Path]:
    monkeypatch.setattr("pytest_lipsync.scoring.scorer.Scorer", _Scorer)
    weights = tmp_path / "weights.model"
    weights.write_bytes(b"stand-in weights")
    failing, passing = tmp_path / "failing.mp4", tmp_path / "passing.mp4"
    failing.write_bytes(b"one video")
    passing.write_bytes(b"another video")
    settings = Settings(protocol="cropped", fidelity="clean", device="cpu", syncnet_weights=str(weights), offline=True)
    return settings, failing, passing


def _scored(cache: _Cache, settings: Settings, path: Path) -> tuple[float, int, int]:
    service = ScoreService(cache)
    lse_d = service.score(path, settings).metrics["lse_d"]
    return lse_d, service.tally.scored, service.tally.replayed


def test_an_edited_entry_is_scored_again_and_rewritten(videos: tuple[Settings, Path, Path]) -> None:
    settings, failing, _ = videos
    cache = _Cache()
    assert _scored(cache, settings, failing) == (9.0, 1, 0)
    assert _scored(cache, settings, failing) == (9.0, 0, 1)
    (key,) = cache
    cache[key]["score"]["metrics"]["lse_d"] = 1.0  # a hand edit that would turn the gate green
    assert _scored(cache, settings, failing) == (9.0, 1, 0)
    assert _scored(cache, settings, failing) == (9.0, 0, 1)  # the fresh entry replays again


def test_an_entry_copied_from_another_videos_key_is_scored_again(videos: tuple[Settings, Path, Path]) -> None:
    settings, failing, passing = videos
    cache = _Cache()
    _scored(cache, settings, failing)
    (failing_key,) = cache
    _scored(cache, settings, passing)
    (passing_key,) = set(cache) - {failing_key}
    cache[failing_key] = copy.deepcopy(cache[passing_key])
    assert _scored(cache, settings, failing) == (9.0, 1, 0)
    assert _scored(cache, settings, passing) == (5.0, 0, 1)
