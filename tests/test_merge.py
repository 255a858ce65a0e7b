"""``lipsync merge``: comparable, complete shard reports become one; anything else is refused precisely."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.results import Report, RunRecord, VideoScore, WeightsRecord

SHA = "a" * 64


def _write(
    path: Path,
    keys: list[str],
    *,
    shard: str | None = None,
    collected: list[str] | None = None,
    sha: str = SHA,
    fidelity: str = "clean",
    device: str = "cpu",
    ground_truth: bool = False,
    settings: dict[str, object] | None = None,
) -> Path:
    """A report scoring ``keys``, of a run that collected ``collected`` (default: just ``keys``); with
    ``ground_truth``, every video was compared with its own (PSNR 31, SSIM 0.968); ``settings``: the run's
    recorded settings."""
    recorded = {"protocol": "cropped", "fidelity": fidelity} if settings is None else settings
    run = RunRecord("0.1.0", recorded, (WeightsRecord("syncnet", "w", sha, True),), device)
    metrics = {"lse_d": 7.0, "lse_c": 5.0, "offset": 0.0, **({"psnr": 31.0, "ssim": 0.968} if ground_truth else {})}
    videos = tuple(
        VideoScore(
            key,
            metrics,
            frames=25,
            duration=1.0,
            quality={"reference": f"gt/{key}", "error": None} if ground_truth else None,
        )
        for key in keys
    )
    document = Report(run, videos, shard=shard, collected=tuple(keys if collected is None else collected)).to_dict()
    path.write_text(json.dumps(document))
    return path


def _edit(path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def _merge(tmp_path: Path, *parts: Path) -> int:
    return main(["merge", *map(str, parts), "-o", str(tmp_path / "all.json")])


ALL = ["a.mp4", "b.mp4", "c.mp4"]


def test_shards_merge_sorted_with_the_devices_named(tmp_path: Path) -> None:
    one = _write(tmp_path / "1.json", ["b.mp4"], shard="1/2", collected=ALL, device="cuda:0")
    two = _write(tmp_path / "2.json", ["a.mp4", "c.mp4"], shard="2/2", collected=ALL, device="cpu")
    assert _merge(tmp_path, one, two) == 0
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [video["path"] for video in merged["videos"]] == ALL and merged["collected"] == ALL
    assert merged["device"] == "cuda:0, cpu" and "shard" not in merged
    assert main(["gate", str(tmp_path / "all.json")]) == 0


def test_other_settings_are_refused_naming_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["a.mp4"])
    two = _write(tmp_path / "2.json", ["b.mp4"], fidelity="reference")
    assert _merge(tmp_path, one, two) == 2
    error = capsys.readouterr().err
    assert f"{one} and {two} cannot be merged" in error
    assert f"fidelity = 'clean' in {one}, 'reference' in {two}" in error
    assert not (tmp_path / "all.json").exists()


def test_shards_from_before_the_frame_rule_are_not_merged_with_reference_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_gate_reads_the_projects_pyproject_and_names_its_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _write(tmp_path / "all.json", ["a.mp4", "b.mp4"])
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the pyproject is found upwards, as pytest finds its rootdir
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    (tmp_path / "pyproject.toml").write_text("[tool.lipsync.thresholds]\nlse_d_max = 6.0\n")
    assert main(["gate", str(report)]) == 1
    assert "a.mp4: 1 of 1 check failed" in capsys.readouterr().out
    monkeypatch.setenv("LIPSYNC_LSE_D_MAX", "7.5")
    assert main(["gate", str(report)]) == 0
    assert main(["gate", str(report), "--lse-d-max", "6.5"]) == 1  # the command line beats the environment
    capsys.readouterr()
    (tmp_path / "pyproject.toml").write_text("[tool.lipsync]\nlse_d_maxx = 6.0\n")
    assert main(["gate", str(report)]) == 2
    assert (
        f"[tool.lipsync] lse_d_maxx in {tmp_path / 'pyproject.toml'} is not a pytest-lipsync setting"
        in capsys.readouterr().err
    )


def _gate_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["gate", str(path)]) == 2
    return capsys.readouterr().err


def test_gate_refuses_a_report_without_videos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = _write(tmp_path / "empty.json", [])
    assert f"{empty}: holds no videos: the run that wrote it gated nothing. " in _gate_error(empty, capsys)


def test_gate_refuses_a_single_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "1.json", ["b.mp4"], shard="1/2", collected=ALL)
    error = _gate_error(one, capsys)
    assert f"{one}: is shard 1/2 of a split, not a whole run. Merge every shard's report first" in error
    assert main(["gate", str(_write(tmp_path / "only.json", ALL, shard="1/1"))]) == 0  # one shard of one is the run


def test_a_video_listed_twice_is_refused_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Else the passing entry could hide the failing one."""
    twice = _edit(
        _write(tmp_path / "twice.json", ["a.mp4", "b.mp4"]),
        lambda d: d["videos"].append({**d["videos"][0], "metrics": {}}),
    )
    problem = f"{twice}: is not a pytest-lipsync report (videos[2].path 'a.mp4' is listed twice (also videos[0]))"
    assert problem in _gate_error(twice, capsys)
    assert _merge(tmp_path, twice) == 2 and problem in capsys.readouterr().err
    again = _edit(_write(tmp_path / "again.json", ["a.mp4"]), lambda d: d["collected"].append("a.mp4"))
    assert "(collected[1] 'a.mp4' is listed twice (also collected[0]))" in _gate_error(again, capsys)


def test_a_report_missing_collected_videos_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shard whose shard field was deleted or emptied, or a run that stopped early, lacks videos its run collected."""
    two = _write(tmp_path / "2.json", ["a.mp4", "c.mp4"], shard="2/2", collected=ALL)
    _edit(two, lambda d: d.pop("shard"))
    problem = "has no result for 1 of the 3 videos its run collected: b.mp4. "
    assert f"{two}: {problem}" in _gate_error(two, capsys)
    assert _merge(tmp_path, two) == 2
    assert (
        f"the reports have no result for 1 of the 3 videos their runs collected: b.mp4 (collected by {two}). "
        in capsys.readouterr().err
    )
    assert not (tmp_path / "all.json").exists()
    _edit(two, lambda d: d.update(shard=""))
    assert "(shard must be \"i/n\" with 1 <= i <= n, not '')" in _gate_error(two, capsys)


def test_a_report_that_does_not_record_its_collected_videos_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _edit(_write(tmp_path / "old.json", ALL), lambda d: d.pop("collected"))
    problem = f"{old}: does not record which videos its run collected, so it cannot show that it is complete"
    assert problem in _gate_error(old, capsys)
    assert _merge(tmp_path, old, _write(tmp_path / "new.json", ["d.mp4"])) == 2 and problem in capsys.readouterr().err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the working directory, with no LIPSYNC_* variable set."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    return tmp_path


def test_gate_judges_the_reports_psnr_and_ssim_without_a_configured_reference(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _write(project / "all.json", ALL, ground_truth=True)
    assert main(["gate", str(report), "--ssim-min", "0.999"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"ssim\s+0\.968\s+0\.999\s+-\s+-0\.031\s+ssim_min\s+FAIL", out)
    assert out.rstrip().endswith("lipsync gate: failed: 3 of 6 verdicts failed")
    (project / "pyproject.toml").write_text("[tool.lipsync.thresholds]\npsnr_min = 32\n")
    assert main(["gate", str(report)]) == 1
    assert main(["gate", str(report), "--psnr-min", "30"]) == 0


@pytest.mark.parametrize(
    ("pyproject", "option", "named"),
    [
        ("", ["--psnr-min", "20"], "--psnr-min"),
        ("[tool.lipsync.thresholds]\nssim_min = 0.9\n", [], "[tool.lipsync] thresholds.ssim_min in {pyproject}"),
        ("[tool.lipsync.regression]\nssim = '-0.01'\n", [], "[tool.lipsync] regression.ssim in {pyproject}"),
        (
            "[[tool.lipsync.overrides]]\nglob = '*.mp4'\npsnr_min = 20\n",
            [],
            "[tool.lipsync] overrides[0].psnr_min in {pyproject}",
        ),
    ],
)
def test_a_quality_rule_with_no_ground_truth_anywhere_is_a_usage_error(
    pyproject: str, option: list[str], named: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It would judge nothing, and a gate that judges nothing passes."""
    (project / "pyproject.toml").write_text(pyproject)
    assert main(["gate", str(_write(project / "all.json", ALL)), *option]) == 2
    error = capsys.readouterr().err
    expected = (
        f"{named.format(pyproject=project / 'pyproject.toml')} would judge PSNR/SSIM against ground truth, but the "
        "report holds none (its videos were scored without ground truth) and none is configured. Score the videos "
        'with ground truth (reference = "DIR" or [tool.lipsync.pairs]) and gate that report, or remove the rule'
    )
    assert expected in error
