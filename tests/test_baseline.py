"""Baseline files are committed next to the code: nothing machine-specific, nothing unused, and a layout
whose diff shows only the numbers that changed. Files written by earlier versions still load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import check_compatible, load_baseline, update_baseline
from pytest_lipsync.results import Report, RunRecord, TrackScore, VideoScore, WeightsRecord

SHA = "a" * 64


def _run(weights_path: str = "/home/ci/.cache/pytest-lipsync/syncnet_v2.model", sha: str = SHA) -> RunRecord:
    settings = {"protocol": "pipeline", "fidelity": "clean", "min_track": 50}
    return RunRecord("0.1.0", settings, (WeightsRecord("syncnet", weights_path, sha, True),), "cpu")


def _scored(key: str, lse_d: float = 7.0) -> VideoScore:
    """A score as the scorer returns it: tracks, timings and the other per-run fields filled in."""
    track = TrackScore(0, 99, 96, lse_d, 1.2, 0, mean_dist=(9.0, lse_d, 9.5), frame_confidence=(1.0,) * 3)
    return VideoScore(
        path=key,
        metrics={"offset": 0.0, "lse_c": 1.2, "lse_d": lse_d},
        tracks=(track,),
        frames=100,
        audio_frames=100,
        duration=4.0,
        timings={"decode": 0.1, "syncnet": 5.0},
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_a_baseline_names_its_weights_by_file_and_hash_never_by_a_machine_path(tmp_path: Path) -> None:
    path = tmp_path / "lipsync-baseline.json"
    update_baseline(path, _run(), {"videos/a.mp4": _scored("videos/a.mp4")}, {"videos/a.mp4"})
    document = json.loads(path.read_text())
    assert document["weights"] == [{"custom": True, "name": "syncnet", "path": "syncnet_v2.model", "sha256": SHA}]
    assert not [text for text in _strings(document) if text.startswith("/") or str(tmp_path) in text]


def test_the_same_weights_elsewhere_compare_and_other_weights_do_not(tmp_path: Path) -> None:
    path = tmp_path / "lipsync-baseline.json"
    update_baseline(path, _run(), {"videos/a.mp4": _scored("videos/a.mp4")}, {"videos/a.mp4"})
    baseline = load_baseline(path)
    assert baseline is not None
    check_compatible(baseline, _run(weights_path="C:/runner/weights/renamed.model"))
    with pytest.raises(ConfigError, match="syncnet weights SHA-256 a{64} in the baseline, b{64} now"):
        check_compatible(baseline, _run(sha="b" * 64))


def test_entries_hold_only_what_a_baseline_uses(tmp_path: Path) -> None:
    path = tmp_path / "lipsync-baseline.json"
    quality = VideoScore(
        path="videos/b.mp4",
        metrics={"lse_d": 7.0, "lse_c": 1.2, "offset": 0.0, "psnr": 30.0, "ssim": 0.9},
        frames=100,
        duration=4.0,
        quality={"psnr_per_frame": [30.0] * 100},
        damaged_frames=0,
    )
    scores = {"videos/a.mp4": _scored("videos/a.mp4"), "videos/b.mp4": quality}
    update_baseline(path, _run(), scores, set(scores))
    entries = json.loads(path.read_text())["videos"]
    assert [sorted(entry) for entry in entries] == [["duration", "frames", "metrics", "path"]] * 2
    assert entries[1]["metrics"] == {"lse_c": 1.2, "lse_d": 7.0, "offset": 0.0, "psnr": 30.0, "ssim": 0.9}


def test_layout_is_sorted_and_the_same_scores_give_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    keys = ["videos/c.mp4", "videos/a.mp4", "videos/b.mp4"]
    update_baseline(first, _run(), {key: _scored(key) for key in keys}, set(keys))
    reordered = {key: _scored(key) for key in sorted(keys, reverse=True)}
    update_baseline(second, _run(), reordered, set(keys))
    text = first.read_text()
    assert text == second.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert [entry["path"] for entry in json.loads(text)["videos"]] == sorted(keys)


def test_a_baseline_written_by_an_earlier_version_loads_compares_and_is_rewritten_lean(tmp_path: Path) -> None:
    path = tmp_path / "lipsync-baseline.json"
    old = Report(_run(), (_scored("videos/a.mp4", lse_d=7.0), _scored("videos/b.mp4", lse_d=7.5))).to_dict()
    path.write_text(json.dumps(old, indent=2))  # every field, the absolute weights path, insertion order
    baseline = load_baseline(path)
    assert baseline is not None and (baseline.values("videos/b.mp4").metrics or {}).get("lse_d") == 7.5
    check_compatible(baseline, _run(weights_path="/elsewhere/syncnet_v2.model"))
    change = update_baseline(
        path, _run(), {"videos/a.mp4": _scored("videos/a.mp4", lse_d=7.0)}, {"videos/a.mp4", "videos/b.mp4"}
    )
    assert (change.added, change.changed, change.removed, change.unchanged) == ((), (), (), 2)
    entries = json.loads(path.read_text())["videos"]
    assert [(entry["path"], entry["metrics"]["lse_d"], sorted(entry)) for entry in entries] == [
        ("videos/a.mp4", 7.0, ["duration", "frames", "metrics", "path"]),
        ("videos/b.mp4", 7.5, ["duration", "frames", "metrics", "path"]),
    ]
