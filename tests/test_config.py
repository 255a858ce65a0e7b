"""Configuration that must fail closed: numeric ranges (NaN, infinity, out of range) and settings that
would otherwise be ignored without a word. Pure functions over layers; no pytest runs, no scoring."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path

import pytest

from pytest_lipsync.bounds import range_of
from pytest_lipsync.config.keys import RunOptions
from pytest_lipsync.config.resolution import Layer, env_layer, environment_warnings, resolve
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.rules import Thresholds, unmatched_overrides
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.settings import Settings

PYPROJECT = "/p/pyproject.toml"


def _pyproject(values: dict[str, object]) -> Layer:
    return Layer("pyproject", values, PYPROJECT)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            env_layer({"LIPSYNC_TIMEOUT": "nan"}),
            "LIPSYNC_TIMEOUT is invalid: setting 'timeout' is nan. Use a finite number > 0",
        ),
        (
            Layer("option", {"timeout": math.inf}),
            "--timeout is invalid: setting 'timeout' is inf. Use a finite number > 0",
        ),
        (
            _pyproject({"facedet_scale": 1e300}),
            f"[tool.lipsync] facedet_scale in {PYPROJECT} is invalid: setting 'facedet_scale' is 1e+300. "
            "Use a finite number > 0 and <= 1",
        ),
        (
            Layer("flag", {"facedet_scale": "nan"}),
            "--lipsync-facedet-scale is invalid: setting 'facedet_scale' is nan. Use a finite number > 0 and <= 1",
        ),
        (
            env_layer({"LIPSYNC_CROP_SCALE": "nan"}),
            "LIPSYNC_CROP_SCALE is invalid: setting 'crop_scale' is nan. Use a finite number from 0 to 1",
        ),
        (
            env_layer({"LIPSYNC_MIN_FACE_SIZE": "-inf"}),
            "LIPSYNC_MIN_FACE_SIZE is invalid: setting 'min_face_size' is -inf. Use a finite number >= 0",
        ),
        (
            _pyproject({"scene_threshold": 300.0}),
            "is invalid: setting 'scene_threshold' is 300.0. Use a finite number > 0 and <= 255",
        ),
        (
            env_layer({"LIPSYNC_MAX_CORRUPT_FRACTION": "nan"}),
            "setting 'max_corrupt_fraction' is nan. Use a finite number from 0 to 1",
        ),
        (
            _pyproject({"max_length_mismatch": -1}),
            "max_length_mismatch in /p/pyproject.toml is invalid: setting 'max_length_mismatch' is -1. "
            "Use an integer >= 0",
        ),
        (
            _pyproject({"thresholds": {"lse_d_max": math.nan}}),
            f"[tool.lipsync] thresholds.lse_d_max in {PYPROJECT} is invalid: setting 'lse_d_max' is nan. "
            "Use a finite number",
        ),
        (
            _pyproject({"thresholds": {"ssim_min": 2.0}}),
            f"[tool.lipsync] thresholds.ssim_min in {PYPROJECT} is invalid: setting 'ssim_min' is 2.0. "
            "Use a finite number from -1 to 1",
        ),
        (
            env_layer({"LIPSYNC_LSE_C_MIN": "inf"}),
            "LIPSYNC_LSE_C_MIN is invalid: setting 'lse_c_min' is inf. Use a finite number",
        ),
        (
            Layer("option", {"psnr_min": -math.inf}),
            "--psnr-min is invalid: setting 'psnr_min' is -inf. Use a finite number",
        ),
        (
            Layer("marker", {"ssim_min": -1.5}, "test_x.py::test_y"),
            "@pytest.mark.lipsync(ssim_min=...) on test_x.py::test_y is invalid: setting 'ssim_min' is -1.5",
        ),
        (
            _pyproject({"overrides": [{"glob": "a/*.mp4"}, {"glob": "b/*.mp4", "lse_d_max": math.nan}]}),
            f"[tool.lipsync] overrides[1].lse_d_max in {PYPROJECT} is invalid: setting 'lse_d_max' is nan. "
            "Use a finite number",
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
    layer = _pyproject(
        {"facedet_scale": 1.0, "crop_scale": 0.0, "min_face_size": 0, "thresholds": {"ssim_min": -1, "lse_d_max": 0}}
    )
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

    write_json_atomic(
        path, Report(RunRecord("0", {"protocol": "cropped", "fidelity": "clean"}, (), "cpu"), ()).to_dict()
    )
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["score", "missing.mp4", "--timeout", "nan"],
            "lipsync: error: --timeout is invalid: setting 'timeout' is nan. Use a finite number > 0",
        ),
        (
            ["gate", "r.json", "--ssim-min", "2"],
            "lipsync: error: --ssim-min is invalid: setting 'ssim_min' is 2.0. Use a finite number from -1 to 1",
        ),
    ],
)
def test_the_command_line_refuses_them_with_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_lipsync.cli.app import main

    monkeypatch.chdir(tmp_path)
    _empty_report(tmp_path / "r.json")
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)


def test_misspelt_variables_are_named_with_the_setting_meant() -> None:
    environ = {
        "LIPSYNC_LSE_D_MAXX": "3",
        "LIPSYNC_lse_c_min": "2",
        "LIPSYNC_NOTHING_LIKE_IT": "1",
        "LIPSYNC_LSE_D_MAX": "8",
        "LIPSYNC_HOME": "/x",
        "LIPSYNC_MIRRORS": "",
        "LIPSYNC_OFFLINE": "1",
        "LIPSYNC_SYNCNET_WEIGHTS": "s.model",
        "LIPSYNC_FUZZ_CASES": "10",
        "PATH": "/bin",
    }
    assert environment_warnings(environ) == (
        "LIPSYNC_LSE_D_MAXX is not a pytest-lipsync setting and is ignored (did you mean LIPSYNC_LSE_D_MAX?)",
        "LIPSYNC_NOTHING_LIKE_IT is not a pytest-lipsync setting and is ignored (a setting's variable is LIPSYNC_ "
        "and its [tool.lipsync] key in capitals, e.g. LIPSYNC_LSE_D_MAX)",
        "LIPSYNC_lse_c_min is not a pytest-lipsync setting and is ignored (did you mean LIPSYNC_LSE_C_MIN?)",
    )


def test_every_variable_the_package_reads_is_known_to_the_warning() -> None:
    """A LIPSYNC_* variable read somewhere in the package must never be reported as a typo."""
    import pytest_lipsync
    from pytest_lipsync.models.registry import RELEASED

    package = Path(pytest_lipsync.__file__).parent
    found = {
        name for path in package.rglob("*.py") for name in re.findall(r"LIPSYNC_[A-Z][A-Z0-9_]*", path.read_text())
    }
    read = {f"{name}SEED" if name.endswith("_") else name for name in found}  # a prefix stands for its variables
    read |= {spec.env_var for spec in RELEASED}
    assert read and environment_warnings(dict.fromkeys(read, "1")) == ()


def test_an_override_glob_that_matches_no_video_is_named() -> None:
    layer = _pyproject(
        {"overrides": [{"glob": "hard/*.mp4", "lse_d_max": 9.0}, {"glob": "hrad/*.mp4", "lse_d_max": 9.0}]}
    )
    rules = resolve([layer], Path(".")).gate
    assert unmatched_overrides(rules, ["videos/hard/a.mp4", "videos/b.mp4"]) == (
        f"[tool.lipsync] overrides[1].glob in {PYPROJECT} = 'hrad/*.mp4' matches none of the 2 videos, so its rules "
        "apply to none (a glob matches video keys, paths from the project root such as 'videos/b.mp4', from the right)",
    )
    assert unmatched_overrides(rules, []) == ()  # no videos at all is not the glob's fault


def _report(path: Path, *keys: str) -> Path:
    from pytest_lipsync.results import Report, RunRecord, VideoScore, write_json_atomic

    videos = tuple(VideoScore(path=key, metrics={"lse_d": 7.0, "lse_c": 6.0, "offset": 0.0}) for key in keys)
    run = RunRecord("0", {"protocol": "cropped", "fidelity": "clean"}, (), "cpu")
    write_json_atomic(path, Report(run, videos, collected=keys).to_dict())
    return path


def test_lipsync_gate_and_score_warn_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_environment: None
) -> None:
    from pytest_lipsync.cli.app import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.lipsync]\n[[tool.lipsync.overrides]]\nglob = "hrad/*.mp4"\nlse_d_max = 9.0\n'
    )
    monkeypatch.setenv("LIPSYNC_LSE_D_MAXX", "3")
    monkeypatch.setenv("LIPSYNC_HOME", str(tmp_path))
    typo = (
        "lipsync: warning: LIPSYNC_LSE_D_MAXX is not a pytest-lipsync setting and is ignored "
        "(did you mean LIPSYNC_LSE_D_MAX?)"
    )
    glob = (
        f"lipsync: warning: [tool.lipsync] overrides[0].glob in {tmp_path / 'pyproject.toml'} = 'hrad/*.mp4' matches "
        "none of the 1 videos, so its rules apply to none (a glob matches video keys, paths from the project root "
        "such as 'videos/hard/a.mp4', from the right)"
    )
    assert main(["gate", str(_report(tmp_path / "r.json", "videos/hard/a.mp4"))]) == 0
    assert capsys.readouterr().err.splitlines() == [typo, glob]
    assert main(["score", "missing.mp4"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == typo


def test_weights_paths_are_relative_to_where_they_were_written(tmp_path: Path) -> None:
    """A path in pyproject.toml is the project's (as ``videos`` and ``baseline`` are), one given in the
    environment or on a command line the caller's: pytest run from a subdirectory finds the same file."""
    from pytest_lipsync.config.resolution import standard_layers

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "pyproject.toml").write_text('[tool.lipsync]\nsyncnet_weights = "weights/s.model"\n')
    layers = standard_layers(project / "pyproject.toml", {}, Layer("flag", {}), project / "sub")
    assert resolve(layers, project).settings.syncnet_weights == str(project / "weights" / "s.model")
    given = standard_layers(
        project / "pyproject.toml", {"LIPSYNC_S3FD_WEIGHTS": "s3fd.pth"}, Layer("flag", {}), elsewhere
    )
    assert resolve(given, project).settings.s3fd_weights == str(elsewhere / "s3fd.pth")
