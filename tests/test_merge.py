"""``lipsync merge``: comparable, complete shard reports become one; anything else is refused precisely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_lipsync.cli import main
from pytest_lipsync.results import Report, RunRecord, VideoScore, WeightsRecord

SHA = "a" * 64


def _write(
    path: Path, keys: list[str], *, shard: str | None = None, sha: str = SHA, fidelity: str = "clean", device: str = "cpu",
    settings: dict[str, object] | None = None,
) -> Path:
    recorded = {"protocol": "cropped", "fidelity": fidelity} if settings is None else settings
    run = RunRecord("0.1.0", recorded, (WeightsRecord("syncnet", "w", sha, True),), device)
    videos = tuple(VideoScore(key, {"lse_d": 7.0, "lse_c": 5.0, "offset": 0.0}, frames=25, duration=1.0) for key in keys)
    document = Report(run, videos, shard=shard).to_dict()
    path.write_text(json.dumps(document))
    return path


def _merge(tmp_path: Path, *parts: Path) -> int:
    return main(["merge", *map(str, parts), "-o", str(tmp_path / "all.json")])


def test_shards_merge_sorted_with_the_devices_named(tmp_path: Path) -> None:
    one = _write(tmp_path / "1.json", ["b.mp4"], shard="1/2", device="cuda:0")
    two = _write(tmp_path / "2.json", ["a.mp4", "c.mp4"], shard="2/2", device="cpu")
    assert _merge(tmp_path, one, two) == 0
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [video["path"] for video in merged["videos"]] == ["a.mp4", "b.mp4", "c.mp4"]
    assert merged["device"] == "cuda:0, cpu" and "shard" not in merged


def test_other_settings_are_refused_naming_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4"])
    two = _write(tmp_path / "2.json", ["b.mp4"], fidelity="reference")
    assert _merge(tmp_path, one, two) == 2
    error = capsys.readouterr().err
    assert f"{one} and {two} cannot be merged" in error
    assert f"fidelity = 'clean' in {one}, 'reference' in {two}" in error
    assert not (tmp_path / "all.json").exists()


def test_shards_from_before_the_frame_rule_are_not_merged_with_reference_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_lipsync.settings import Settings

    now = Settings().result_settings()
    before = {key: value for key, value in now.items() if key != "frame_rule"}
    one = _write(tmp_path / "1.json", ["a.mp4"], settings=before)
    two = _write(tmp_path / "2.json", ["b.mp4"], settings=now)
    assert _merge(tmp_path, one, two) == 2
    assert f"frame_rule = 'fps_filter' in {one}, 'ffmpeg_r25' in {two}" in capsys.readouterr().err


def test_other_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4"])
    two = _write(tmp_path / "2.json", ["b.mp4"], sha="b" * 64)
    assert _merge(tmp_path, one, two) == 2
    assert f"syncnet weights SHA-256 {SHA} in {one}, {'b' * 64} in {two}" in capsys.readouterr().err


def test_other_schema_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4"])
    two = _write(tmp_path / "2.json", ["b.mp4"])
    document = json.loads(two.read_text())
    two.write_text(json.dumps({**document, "schema_version": 99}))
    assert _merge(tmp_path, one, two) == 2
    assert f"{two}: is not a pytest-lipsync report (schema_version is 99" in capsys.readouterr().err


def test_a_video_in_two_reports_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4", "b.mp4"])
    two = _write(tmp_path / "2.json", ["b.mp4"])
    assert _merge(tmp_path, one, two) == 2
    assert f"b.mp4 is in both {one} and {two}" in capsys.readouterr().err


def test_missing_or_repeated_shards_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4"], shard="1/3")
    three = _write(tmp_path / "3.json", ["c.mp4"], shard="3/3")
    assert _merge(tmp_path, one, three) == 2
    assert "shard 2/3 is missing" in capsys.readouterr().err
    again = _write(tmp_path / "1b.json", ["b.mp4"], shard="1/3")
    assert _merge(tmp_path, one, again) == 2
    assert f"{one} is shard 1/3 and {again} is shard 1/3: they are not shards of one split" in capsys.readouterr().err
    other = _write(tmp_path / "2of2.json", ["b.mp4"], shard="2/2")
    assert _merge(tmp_path, one, other) == 2
    assert "is shard 2/2: they are not shards of one split" in capsys.readouterr().err


def test_unreadable_report_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{")
    assert _merge(tmp_path, tmp_path / "bad.json") == 2
    assert "bad.json: is not a pytest-lipsync report" in capsys.readouterr().err
    assert main(["gate", str(tmp_path / "absent.json")]) == 2
    assert "absent.json: cannot be read" in capsys.readouterr().err


def test_gate_reads_the_projects_pyproject_and_names_its_errors(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    report = _write(tmp_path / "all.json", ["a.mp4", "b.mp4"])
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the pyproject is found upwards, as pytest finds its rootdir
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    (tmp_path / "pyproject.toml").write_text("[tool.lipsync.thresholds]\nlse_d_max = 6.0\n")
    assert main(["gate", str(report)]) == 1
    assert "a.mp4: 1 of 1 checks failed" in capsys.readouterr().out
    monkeypatch.setenv("LIPSYNC_LSE_D_MAX", "7.5")
    assert main(["gate", str(report)]) == 0
    assert main(["gate", str(report), "--lse-d-max", "6.5"]) == 1  # the command line beats the environment
    capsys.readouterr()
    (tmp_path / "pyproject.toml").write_text("[tool.lipsync]\nlse_d_maxx = 6.0\n")
    assert main(["gate", str(report)]) == 2
    assert f"[tool.lipsync] lse_d_maxx in {tmp_path / 'pyproject.toml'} is not a pytest-lipsync setting" in capsys.readouterr().err
