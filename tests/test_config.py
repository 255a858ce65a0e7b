"""Configuration that must fail closed: numeric ranges (NaN, infinity, out of range) and settings that
would otherwise be ignored without a word. Pure functions over layers; no pytest runs, no scoring."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

import pytest

from pytest_lipsync.bounds import range_of
from pytest_lipsync.config import Layer, env_layer, resolve
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.keys import RunOptions, Thresholds
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.settings import Settings

PYPROJECT = "/p/pyproject.toml"


def _pyproject(values: dict[str, object]) -> Layer:
    return Layer("pyproject", values, PYPROJECT)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (env_layer({"LIPSYNC_TIMEOUT": "nan"}), "LIPSYNC_TIMEOUT is invalid: setting 'timeout' is nan. Use a finite number > 0"),
        (Layer("option", {"timeout": math.inf}), "--timeout is invalid: setting 'timeout' is inf. Use a finite number > 0"),
        (
            _pyproject({"facedet_scale": 1e300}),
            f"[tool.lipsync] facedet_scale in {PYPROJECT} is invalid: setting 'facedet_scale' is 1e+300. "
            "Use a finite number > 0 and <= 1",
        ),
        (
            Layer("flag", {"facedet_scale": "nan"}),
            "--lipsync-facedet-scale is invalid: setting 'facedet_scale' is nan. Use a finite number > 0 and <= 1",
        ),
        (env_layer({"LIPSYNC_CROP_SCALE": "nan"}), "LIPSYNC_CROP_SCALE is invalid: setting 'crop_scale' is nan. Use a finite number from 0 to 1"),
        (env_layer({"LIPSYNC_MIN_FACE_SIZE": "-inf"}), "LIPSYNC_MIN_FACE_SIZE is invalid: setting 'min_face_size' is -inf. Use a finite number >= 0"),
        (_pyproject({"scene_threshold": 300.0}), "is invalid: setting 'scene_threshold' is 300.0. Use a finite number > 0 and <= 255"),
        (env_layer({"LIPSYNC_MAX_CORRUPT_FRACTION": "nan"}), "setting 'max_corrupt_fraction' is nan. Use a finite number from 0 to 1"),
        (_pyproject({"max_length_mismatch": -1}), "max_length_mismatch in /p/pyproject.toml is invalid: setting 'max_length_mismatch' is -1. Use an integer >= 0"),
        (
            _pyproject({"thresholds": {"lse_d_max": math.nan}}),
            f"[tool.lipsync] thresholds.lse_d_max in {PYPROJECT} is invalid: setting 'lse_d_max' is nan. Use a finite number",
        ),
        (
            _pyproject({"thresholds": {"ssim_min": 2.0}}),
            f"[tool.lipsync] thresholds.ssim_min in {PYPROJECT} is invalid: setting 'ssim_min' is 2.0. Use a finite number from -1 to 1",
        ),
        (env_layer({"LIPSYNC_LSE_C_MIN": "inf"}), "LIPSYNC_LSE_C_MIN is invalid: setting 'lse_c_min' is inf. Use a finite number"),
        (Layer("option", {"psnr_min": -math.inf}), "--psnr-min is invalid: setting 'psnr_min' is -inf. Use a finite number"),
        (
            Layer("marker", {"ssim_min": -1.5}, "test_x.py::test_y"),
            "@pytest.mark.lipsync(ssim_min=...) on test_x.py::test_y is invalid: setting 'ssim_min' is -1.5",
        ),
        (
            _pyproject({"overrides": [{"glob": "a/*.mp4"}, {"glob": "b/*.mp4", "lse_d_max": math.nan}]}),
            f"[tool.lipsync] overrides[1].lse_d_max in {PYPROJECT} is invalid: setting 'lse_d_max' is nan. Use a finite number",
        ),
        (
            _pyproject({"regression": {"lse_d": "9" * 400}}),
            f"[tool.lipsync] regression.lse_d in {PYPROJECT} '{'9' * 400}' is not a finite tolerance",
        ),
        (
            _pyproject({"overrides": [{"glob": "a/*.mp4", "regression": {"lse_c": "-" + "9" * 400 + "%"}}]}),
            "overrides[0].regression.lse_c in /p/pyproject.toml '-999",
        ),
    ],
)
def test_numbers_out_of_range_nan_and_infinity_are_refused_naming_key_and_source(layer: Layer, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve([layer], Path("."))
    assert message in raised.value.message


@pytest.mark.parametrize(
    ("owner", "changes", "message"),
    [
        (Settings, {"timeout": math.nan}, "setting 'timeout' is nan. Use a finite number > 0"),
        (Settings, {"facedet_scale": 1.5}, "setting 'facedet_scale' is 1.5. Use a finite number > 0 and <= 1"),
        (Settings, {"crop_scale": math.nan}, "setting 'crop_scale' is nan. Use a finite number from 0 to 1"),
        (Settings, {"batch_size": 2.0}, "setting 'batch_size' is 2.0. Use an integer > 0"),
        (Thresholds, {"ssim_min": 2.0}, "setting 'ssim_min' is 2.0. Use a finite number from -1 to 1"),
        (Thresholds, {"lse_d_max": math.inf}, "setting 'lse_d_max' is inf. Use a finite number"),
        (QualitySettings, {"max_length_mismatch": True}, "setting 'max_length_mismatch' is True. Use an integer >= 0"),
    ],
)
def test_objects_built_in_code_are_checked_too(owner: type, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        owner(**changes)
    assert raised.value.message == message


def test_values_at_the_ends_of_their_ranges_are_accepted() -> None:
    layer = _pyproject({"facedet_scale": 1.0, "crop_scale": 0.0, "min_face_size": 0, "thresholds": {"ssim_min": -1, "lse_d_max": 0}})
    resolved = resolve([layer, env_layer({"LIPSYNC_TIMEOUT": "0.5", "LIPSYNC_SSIM_MIN": "1"})], Path("."))
    assert (resolved.settings.facedet_scale, resolved.settings.crop_scale, resolved.settings.timeout) == (1.0, 0.0, 0.5)
    assert (resolved.gate.thresholds.ssim_min, resolved.gate.thresholds.lse_d_max) == (1.0, 0.0)


def _numeric(hint: object) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(option in (int, float) for option in options)


@pytest.mark.parametrize("owner", [Settings, QualitySettings, Thresholds, RunOptions])
def test_every_numeric_setting_declares_its_range(owner: type) -> None:
    """A numeric field added later without a range would take NaN; this names it."""
    hints = typing.get_type_hints(owner)
    unbounded = [f.name for f in dataclasses.fields(owner) if _numeric(hints[f.name]) and range_of(f) is None]
    assert unbounded == []


def _empty_report(path: Path) -> Path:
    from pytest_lipsync.results import Report, RunRecord, write_json_atomic

    write_json_atomic(path, Report(RunRecord("0", {"protocol": "cropped", "fidelity": "clean"}, (), "cpu"), ()).to_dict())
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "missing.mp4", "--timeout", "nan"], "lipsync: error: --timeout is invalid: setting 'timeout' is nan. Use a finite number > 0"),
        (["gate", "r.json", "--ssim-min", "2"], "lipsync: error: --ssim-min is invalid: setting 'ssim_min' is 2.0. Use a finite number from -1 to 1"),
    ],
)
def test_the_command_line_refuses_them_with_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_lipsync.cli import main

    monkeypatch.chdir(tmp_path)
    _empty_report(tmp_path / "r.json")
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message
