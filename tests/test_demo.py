"""``lipsync demo``: the project it makes, its refusals, how it judges each step, and one full run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.cli.demo import (
    BASELINE,
    CLIPS,
    MARKER_FILE,
    STANDIN_LINE,
    WEIGHTS,
    Step,
    check,
    claim_directory,
    just_above_worst,
    write_project,
)
from pytest_lipsync.config.resolution import Layer, resolve, standard_layers

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def test_a_non_empty_directory_that_is_not_an_earlier_demo_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"lipsync: error: {tmp_path}: is not empty and is not an earlier demo (it has no {MARKER_FILE} file)"
    )
    assert "Give a new or empty directory" in error
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_refusal_and_the_module_load_no_media_or_model_library(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code = (
        "import sys; from pytest_lipsync.cli.app import main; code = main(['demo', sys.argv[1]]); "
        "print(code, sorted(m for m in ('torch', 'cv2', 'av', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "2 []"


def test_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    target.write_text("")
    assert main(["demo", str(target)]) == 2
    assert capsys.readouterr().err.startswith(f"lipsync: error: {target}: is a file, not a directory")


def test_help_says_what_it_makes_and_that_its_numbers_are_stand_ins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for said in (
        "stand-in",
        "marker",
        "pyproject.toml",
        "lipsync score",
        "--lipsync-update-baseline",
        "regression",
        "lipsync-demo",
        "earlier demo",
    ):
        assert said in text


def test_the_project_resolves_to_an_offline_pipeline_run_with_its_own_weights(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    write_project(project)
    config = resolve(standard_layers(project / "pyproject.toml", {}, Layer("flag", {}), project), project)
    settings = config.settings
    assert (settings.protocol, settings.detector, settings.offline) == (
        "pipeline",
        "pytest_lipsync.synthetic.faces:marker_detector",
        True,
    )
    assert settings.syncnet_weights == str(project / WEIGHTS) and (project / WEIGHTS).stat().st_size > 50_000_000
    assert settings.min_track <= 25 * 4 // 2  # a track of half a clip counts
    assert config.options.baseline is None and set(config.gate.regression) == {"lse_d", "lse_c"}  # step 4 names it
    assert sorted(p.relative_to(project).as_posix() for p in (project / "videos").iterdir()) == sorted(
        c.name for c in CLIPS
    )
    assert "pytest" in tomllib.loads((project / "pyproject.toml").read_text())["tool"]  # this directory is the rootdir


def test_an_earlier_demo_is_replaced_and_what_it_did_not_make_is_kept(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    write_project(project)
    (project / BASELINE).write_text("{}")
    (project / "videos" / "alice.mp4").write_bytes(b"overwritten by the last step")
    (project / "notes.txt").write_text("mine")
    assert claim_directory(project) is True
    assert sorted(path.name for path in project.iterdir()) == ["notes.txt"]
    write_project(project)
    assert not (project / BASELINE).exists() and (project / "notes.txt").read_text() == "mine"
    assert (project / "videos" / "alice.mp4").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("code", "output", "problem"),
    [
        (1, "... regression lse_d +0.3 FAIL ...", None),
        (0, "3 passed", "exited 0, expected 1"),
        (4, "ERROR: usage", "exited 4, expected 1"),
        (1, "1 failed: unreadable", "failed, but its output does not show 'regression lse_d'"),
    ],
)
def test_a_step_behaves_as_expected_only_with_its_exit_code_and_its_proof(
    code: int, output: str, problem: str | None
) -> None:
    step = Step("a regression", ("pytest",), expected=1, proof="regression lse_d")
    assert check(step, code, output) == problem


@pytest.mark.parametrize(("worst", "threshold"), [(0.868, "0.9"), (1.0, "1.1"), (0.95, "1.0"), (-0.31, "-0.3")])
def test_the_tight_threshold_is_just_above_the_worst_clip(worst: float, threshold: str) -> None:
    videos = [
        {"path": "videos/a.mp4", "metrics": {"lse_c": 1.3}},
        {"path": "videos/b.mp4", "metrics": {"lse_c": worst}},
    ]
    assert just_above_worst({"videos": videos}) == threshold


@pytest.mark.slow
def test_the_demo_runs_every_step_as_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIPSYNC_LSE_D_MAX", "0.1")  # the caller's settings do not reach the demo's commands
    project = tmp_path / "demo"
    assert main(["demo", str(project)]) == 0
    output = capsys.readouterr().out
    assert output.count(STANDIN_LINE) == 6  # the banner, then after each of the 5 steps
    commands = [line for line in output.splitlines() if line.startswith("$ ")]
    tight = just_above_worst(json.loads((project / "scores.json").read_text()))
    assert commands == [
        "$ lipsync score videos/ --json scores.json",
        f"$ pytest --lipsync-lse-c-min={tight}",
        "$ pytest",
        "$ pytest --lipsync-update-baseline",
        "$ cp videos/carol_late_audio.mp4 videos/alice.mp4",
        "$ pytest",
    ]
    score, tight_run, passing, update, regression = re.split(r"^step \d: ", output, flags=re.MULTILINE)[1:]
    assert "videos/carol_late_audio.mp4" in score and "-> exit code 0, as expected" in score
    assert "1 failed, 2 passed" in tight_run and "lse_c_min" in tight_run and "-> exit code 1, as expected" in tight_run
    assert "3 passed" in passing and "3 replayed from the cache" in passing and "-> exit code 0, as expected" in passing
    assert f"{BASELINE} written: 3 added" in update and "-> exit code 0, as expected" in update
    assert "1 failed, 2 passed" in regression and "regression lse_d +0.3" in regression
    assert "-> exit code 1, as expected" in regression
    assert "every step behaved as expected" in output
    baseline = json.loads((project / BASELINE).read_text())
    assert [video["path"] for video in baseline["videos"]] == sorted(clip.name for clip in CLIPS)
    assert baseline["weights"][0]["path"] == Path(WEIGHTS).name
    assert (project / "videos" / "alice.mp4").read_bytes() == (project / "videos" / "carol_late_audio.mp4").read_bytes()
