"""Verdict logic and configuration resolution without pytest runs: tolerances, overrides, judging,
baselines, precedence, coercion by field type, and the ``lipsync init`` scaffold."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.cli.init import init_project
from pytest_lipsync.config import keys
from pytest_lipsync.config import resolution as config_module
from pytest_lipsync.config.resolution import Layer, env_layer, resolve
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import (
    Baseline,
    check_compatible,
    load_baseline,
    update_baseline,
)
from pytest_lipsync.gate.rules import (
    BaselineValues,
    GateRules,
    Override,
    Rules,
    Thresholds,
    Tolerance,
    format_verdict,
    judge,
)
from pytest_lipsync.results import RunRecord, ScoreError, VideoScore, WeightsRecord
from pytest_lipsync.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GOOD = VideoScore(path="out/a.mp4", metrics={"lse_d": 7.0, "lse_c": 6.0, "offset": 0.0})


@pytest.mark.parametrize(
    ("metric", "raw", "baseline", "limit"),
    [
        ("lse_d", "+0.2", 7.0, 7.2),
        ("lse_d", 0.2, 7.0, 7.2),
        ("lse_c", "-0.3", 6.0, 5.7),
        ("lse_c", "-5%", 6.0, 5.7),
        ("lse_d", "+10%", 7.0, 7.7),
        ("ssim", "-0.01", 0.9, 0.89),
    ],
)
def test_tolerance_limits_point_where_the_metric_worsens(
    metric: str, raw: object, baseline: float, limit: float
) -> None:
    assert Tolerance.parse(metric, raw).limit(baseline) == pytest.approx(limit)


@pytest.mark.parametrize(
    ("metric", "raw", "problem"),
    [
        ("lse_c", "+0.3", "wrong way"),
        ("lse_d", "-1", "wrong way"),
        ("lse_d", "x", "not a tolerance"),
        ("offset", "+1", "not a metric"),
    ],
)
def test_malformed_tolerances_say_why(metric: str, raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Tolerance.parse(metric, raw)


def test_overrides_match_from_the_right_and_later_ones_win() -> None:
    rules = GateRules(
        Thresholds(lse_d_max=8.0),
        overrides=(
            Override("hard/*.mp4", {"lse_d_max": 9.0}),
            Override("*.mp4", {"lse_c_min": 1.0}, allow=("too_short",)),
        ),
    )
    hard = rules.for_video("out/hard/x.mp4")
    assert hard.thresholds == Thresholds(lse_d_max=9.0, lse_c_min=1.0) and hard.allow == {"too_short"}
    assert rules.for_video("out/x.mp4").thresholds.lse_d_max == 8.0
    assert hard.origins["lse_d_max"] == "override 'hard/*.mp4'"


def test_judge_reports_every_failing_rule_with_margins() -> None:
    rules = Rules(Thresholds(lse_d_max=6.5, lse_c_min=5.0), {"lse_d": Tolerance.parse("lse_d", "+0.2")})
    verdict = judge(GOOD, GOOD.path, rules, baseline=BaselineValues({"lse_d": 6.0}))
    assert verdict.outcome == "failed" and verdict.reason == "2 of 3 checks failed"
    margins = {check.rule: round(check.margin, 6) for check in verdict.checks}
    assert margins == {"lse_d_max": -0.5, "lse_c_min": 1.0, "regression lse_d +0.2": -0.8}
    text = format_verdict(verdict)
    assert text.splitlines()[1].split() == ["metric", "value", "limit", "baseline", "margin", "rule"]
    assert re.search(r"lse_d\s+7\.000\s+6\.200\s+6\.000\s+-0\.800\s+regression lse_d \+0\.2\s+FAIL", text)


def test_judge_unscorable_missing_baseline_and_nan() -> None:
    broken = VideoScore(path="b.mp4", error=ScoreError("no_face_track", "no face"))
    assert judge(broken, "b.mp4", Rules()).outcome == "failed"
    allowed = judge(broken, "b.mp4", Rules(allow=frozenset({"no_face_track"})))
    assert allowed.outcome == "xfailed" and "no_face_track: no face" in allowed.reason
    missing = judge(GOOD, GOOD.path, Rules(), baseline=BaselineValues(missing="add it"))
    assert (missing.outcome, missing.reason) == ("failed", "add it")
    nan = VideoScore(path="n.mp4", metrics={"lse_d": math.nan})
    assert judge(nan, "n.mp4", Rules(Thresholds(lse_d_max=9.0))).outcome == "failed"
    assert judge(GOOD, GOOD.path, Rules()).outcome == "passed"


def _run(sha: str = "a" * 64, fidelity: str = "clean") -> RunRecord:
    return RunRecord(
        "0", {"protocol": "cropped", "fidelity": fidelity}, (WeightsRecord("syncnet", "w", sha, True),), "cpu"
    )


def test_baseline_update_reports_changes_and_keeps_deselected_entries(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    first = update_baseline(path, _run(), {"a.mp4": GOOD, "b.mp4": GOOD}, {"a.mp4", "b.mp4"})
    assert (first.added, first.changed, first.removed) == (("a.mp4", "b.mp4"), (), ())
    worse = dataclasses.replace(GOOD, metrics={**GOOD.metrics, "lse_d": 8.0})
    second = update_baseline(path, _run(), {"a.mp4": worse, "c.mp4": GOOD}, {"a.mp4", "c.mp4"})
    assert (second.added, second.changed, second.removed, second.unchanged) == (("c.mp4",), ("a.mp4",), ("b.mp4",), 0)
    loaded = load_baseline(path)
    assert loaded is not None and (loaded.values("a.mp4").metrics or {}).get("lse_d") == 8.0
    assert "--lipsync-update-baseline" in str(loaded.values("zzz.mp4").missing)
    check_compatible(loaded, _run())
    with pytest.raises(
        ConfigError, match="fidelity = 'clean' in the baseline, 'reference' now.*syncnet weights SHA-256"
    ):
        check_compatible(loaded, _run(sha="b" * 64, fidelity="reference"))


def test_concurrent_updates_of_different_videos_keep_both_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs (two CI jobs, two shards) update one baseline file at once: each must re-read the other's write.

    The writes wait for each other (briefly: with the file locked, the second cannot have read yet), so
    that without a lock both would read the empty file before either writes."""
    import threading

    from pytest_lipsync.gate import baseline as baseline_module

    path = tmp_path / "base.json"
    both_read = threading.Barrier(2)
    write = baseline_module.write_json_atomic

    def write_after_both_read(target: Path, document: Mapping[str, Any], **options: bool) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=1)
        write(target, document, **options)

    monkeypatch.setattr(baseline_module, "write_json_atomic", write_after_both_read)
    known = {"a.mp4", "b.mp4"}
    runs = [threading.Thread(target=update_baseline, args=(path, _run(), {key: GOOD}, known)) for key in sorted(known)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    loaded = load_baseline(path)
    assert loaded is not None and sorted(loaded.entries) == ["a.mp4", "b.mp4"]


def test_a_baseline_locked_too_long_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    from pytest_lipsync.gate import baseline as baseline_module

    monkeypatch.setattr(baseline_module, "LOCK_SECONDS", 0.01)
    path = tmp_path / "base.json"
    with FileLock(f"{path}.lock"), pytest.raises(ConfigError, match=r"base.json: is locked by another run updating it"):
        update_baseline(path, _run(), {"a.mp4": GOOD}, {"a.mp4"})
    assert not path.exists()


def test_the_frame_rule_is_recorded_where_the_pipeline_replays_the_reference() -> None:
    assert Settings().result_settings()["frame_rule"] == "ffmpeg_r25"
    assert Settings(fidelity="clean").result_settings()["frame_rule"] == "fps_filter"
    assert "frame_rule" not in Settings(protocol="cropped").result_settings()  # the fps filter, as always


def _pipeline_run(**settings: object) -> RunRecord:
    return RunRecord("0", {"protocol": "pipeline", **settings}, (WeightsRecord("syncnet", "w", "a" * 64, True),), "cpu")


def test_a_baseline_recorded_before_the_frame_rule_was_made_with_the_fps_filter(tmp_path: Path) -> None:
    reference, clean = Settings().result_settings(), Settings(fidelity="clean").result_settings()
    unrecorded = {key: value for key, value in reference.items() if key != "frame_rule"}
    old_reference = Baseline(tmp_path / "base.json", _pipeline_run(**unrecorded), {})
    with pytest.raises(ConfigError, match="frame_rule = 'fps_filter' in the baseline, 'ffmpeg_r25' now"):
        check_compatible(old_reference, _pipeline_run(**reference))
    old_clean = {key: value for key, value in clean.items() if key != "frame_rule"}
    check_compatible(Baseline(old_reference.path, _pipeline_run(**old_clean), {}), _pipeline_run(**clean))


def test_damaged_baseline_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ConfigError, match="base.json: is not a readable baseline"):
        load_baseline(path)


def test_environment_coerces_by_field_type_and_ignores_other_lipsync_variables() -> None:
    environ = {"LIPSYNC_OFFLINE": "yes", "LIPSYNC_BATCH_SIZE": "7", "LIPSYNC_HOME": "/x", "LIPSYNC_LSE_C_MIN": "2"}
    lists = {"LIPSYNC_VIDEOS": f"a b{os.pathsep}c", "LIPSYNC_ALLOW": "too_short, no_face_track"}
    resolved = resolve([env_layer({**environ, **lists})], Path("."))
    assert (resolved.settings.offline, resolved.settings.batch_size, resolved.gate.thresholds.lse_c_min) == (
        True,
        7,
        2.0,
    )
    assert resolved.options.videos == ("a b", "c") and resolved.gate.allow == ("too_short", "no_face_track")
    with pytest.raises(ConfigError, match="LIPSYNC_OFFLINE must be true or false, not 'maybe'"):
        resolve([env_layer({"LIPSYNC_OFFLINE": "maybe"})], Path("."))


def test_later_layers_win_and_errors_name_their_layer(tmp_path: Path) -> None:
    pyproject = Layer(
        "pyproject", {"fidelity": "clean", "thresholds": {"lse_d_max": 8.0}}, str(tmp_path / "pyproject.toml")
    )
    flags = Layer("flag", {"lse_d_max": "7.5"})
    marker = Layer("marker", {"lse_d_max": 7.0}, "test_x.py::test_y")
    resolved = resolve([pyproject, flags, marker], tmp_path)
    assert resolved.settings.fidelity == "clean" and resolved.gate.thresholds.lse_d_max == 7.0
    with pytest.raises(ConfigError, match="no baseline file is configured"):
        resolve([Layer("flag", {"update_baseline": True})], tmp_path)
    with pytest.raises(ConfigError, match=r"@pytest.mark.lipsync\(protocol=...\) on test_x.py::test_y must be one of"):
        resolve([Layer("marker", {"protocol": "fast"}, "test_x.py::test_y")], tmp_path)


def test_fields_added_to_settings_become_keys_coerced_by_their_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other stages add settings in parallel (quality, pipeline): the loader must need no change."""

    @dataclasses.dataclass(frozen=True)
    class Extended(Settings):
        ssim_window: Literal["uniform7", "gaussian11"] = "uniform7"
        resize_reference: bool = False
        max_length_mismatch: int = 2

    monkeypatch.setattr(config_module, "Settings", Extended)
    monkeypatch.setattr(keys, "Settings", Extended)
    keys.hints.cache_clear()
    try:
        layer = env_layer({"LIPSYNC_RESIZE_REFERENCE": "true", "LIPSYNC_MAX_LENGTH_MISMATCH": "5"})
        resolved = resolve([Layer("pyproject", {"ssim_window": "gaussian11"}, "p.toml"), layer], Path("."))
        assert (
            resolved.settings.ssim_window,
            resolved.settings.resize_reference,
            resolved.settings.max_length_mismatch,
        ) == ("gaussian11", True, 5)
        with pytest.raises(
            ConfigError, match="ssim_window in p.toml must be one of 'uniform7', 'gaussian11', not 'box'"
        ):
            resolve([Layer("pyproject", {"ssim_window": "box"}, "p.toml")], Path("."))
    finally:
        keys.hints.cache_clear()


def test_every_key_the_init_table_suggests_is_valid_uncommented(tmp_path: Path) -> None:
    """The table's commented keys are suggestions a user uncomments: each must be a key with a valid value."""
    init_project(tmp_path)
    text = (tmp_path / "pyproject.toml").read_text()
    uncommented = re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", text)
    assert uncommented.count("\n# ") < text.count("\n# ") - 10  # the suggestions were uncommented
    table = tomllib.loads(uncommented)["tool"]["lipsync"]
    assert set(table["metrics"]) == {"lpips", "fid", "cpbd"}
    assert {"lpips_max", "fid_max", "cpbd_min", "psnr_min", "ssim_min"} <= set(table["thresholds"])
    config = resolve([Layer("pyproject", table, "pyproject.toml")], tmp_path)
    assert {"lpips", "fid", "cpbd"} <= set(config.settings.metrics)


def test_init_adds_a_commented_table_and_never_clobbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    assert init_project(tmp_path)[0].endswith("added a commented [tool.lipsync] table")
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["project"]["name"] == "demo" and document["tool"]["lipsync"]["thresholds"] == {
        "lse_d_max": 8.0,
        "lse_c_min": 6.0,
    }
    resolve([Layer("pyproject", document["tool"]["lipsync"], "pyproject.toml")], tmp_path)  # the template is valid
    workflow = (tmp_path / ".github" / "workflows" / "lipsync.yml").read_text()
    assert (
        "runs-on: [self-hosted, linux, x64, gpu]" in workflow
        and "actions/cache@" in workflow
        and "actions/upload-artifact@" in workflow
    )
    before = (tmp_path / "pyproject.toml").read_text()
    assert main(["init", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("left unchanged") == 2
    assert (tmp_path / "pyproject.toml").read_text() == before


def test_github_summary_stays_under_its_limit_and_annotations_are_capped() -> None:
    from pytest_lipsync.gate.rules import Verdict
    from pytest_lipsync.reports.github import (
        MAX_ANNOTATIONS,
        error_annotations,
        markdown_summary,
    )

    scores = [dataclasses.replace(GOOD, path=f"out/clip_{i:05}.mp4") for i in range(5000)]
    verdicts = {s.path: Verdict(s.path, "failed", reason="lse_d too high,\nsee: table") for s in scores}
    text = markdown_summary(scores, verdicts, {"lse_d": 7.0, "lse_c": 6.0}, limit=20_000)
    assert (
        len(text.encode()) < 20_000
        and "more videos left out" in text
        and "| <code>out&#47;clip&#95;00000&#46;mp4</code> | 7.000 |" in text
    )
    lines = error_annotations(verdicts)
    assert len(lines) == MAX_ANNOTATIONS
    assert lines[0] == "::error file=out/clip_00000.mp4,title=lipsync gate::lse_d too high,\\nsee: table"
