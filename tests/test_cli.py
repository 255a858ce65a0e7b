"""``lipsync score``: the table, the JSON, exit codes, and a broken video beside a good one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.results import SCHEMA_VERSION, Report
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip


def test_score_two_clips_one_broken(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good.read_bytes()[:2000])
    out = tmp_path / "scores.json"
    args = ["score", str(good), str(broken), "--protocol", "cropped", "--fidelity", "clean"]
    code = main([*args, "--syncnet-weights", str(syncnet_weights), "--device", "cpu", "--json", str(out)])

    assert code == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["video", "LSE-D", "LSE-C", "offset", "frames", "seconds", "result", "detail"]
    good_row = next(line for line in table if line.startswith(str(good)))
    assert good_row.split()[4:5] == ["25"] and good_row.endswith("scored")
    broken_row = next(line for line in table if line.startswith(str(broken)))
    assert "unreadable: " in broken_row and "broken.mp4" in broken_row

    document = json.loads(out.read_text())
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["settings"] == {"protocol": "cropped", "fidelity": "clean"}
    (weights,) = document["weights"]
    assert weights["custom"] is True and len(weights["sha256"]) == 64
    videos = {Path(v["path"]).name: v for v in document["videos"]}
    assert videos["cli_good.mp4"]["error"] is None
    assert set(videos["cli_good.mp4"]["metrics"]) == {"lse_d", "lse_c", "offset"}
    assert videos["broken.mp4"]["error"]["kind"] == "unreadable"
    assert Report.from_dict(document).to_dict() == document


@pytest.mark.slow
def test_pipeline_protocol_with_a_detector_plugin(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip("cli_one_face.mp4", ClipSpec(seconds=4.4, width=160, height=160, marker=True, seed=21))
    out = tmp_path / "pipeline.json"
    args = [
        "score",
        str(clip),
        "--protocol",
        "pipeline",
        "--detector",
        "pytest_lipsync.synthetic.faces:marker_detector",
    ]
    code = main([*args, "--fidelity", "clean", "--syncnet-weights", str(syncnet_weights), "--json", str(out), "-q"])

    assert code == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(clip)))
    assert row.split()[4:5] == ["110"] and row.endswith("scored")  # 110 frames: a track of more than min_track = 100
    document = json.loads(out.read_text())
    assert document["settings"]["protocol"] == "pipeline"
    assert document["settings"]["detector"] == "pytest_lipsync.synthetic.faces:marker_detector"
    assert [w["name"] for w in document["weights"]] == ["syncnet"]
    (track,) = document["videos"][0]["tracks"]
    assert (track["start_frame"], track["end_frame"]) == (0, 109)
    assert track["boxes"]["detections"] == 110
    assert Report.from_dict(document).to_dict() == document


def test_missing_weights_offline_is_a_usage_error(
    make_clip: MakeClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LIPSYNC_HOME", raising=False)
    monkeypatch.delenv("LIPSYNC_SYNCNET_WEIGHTS", raising=False)
    clip = make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11))
    assert main(["score", str(clip), "--protocol", "cropped", "--offline"]) == 2
    assert "syncnet_v2.model" in capsys.readouterr().err


def test_too_short_clip_fails_with_the_numbers(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip("cli_short.mkv", ClipSpec(seconds=0.2, seed=3))
    out = tmp_path / "short.json"
    code = main(
        [
            "score",
            str(clip),
            "--protocol",
            "cropped",
            "--syncnet-weights",
            str(syncnet_weights),
            "--json",
            str(out),
            "-q",
        ]
    )
    assert code == 1
    error = json.loads(out.read_text())["videos"][0]["error"]
    assert error["kind"] == "too_short"
    assert error["facts"] == {"frames": 5, "audio_frames": 5}


@pytest.mark.parametrize("argv", [["score", "x.mp4", "--fidelity", "lossy"], ["nonsense"]])
def test_bad_command_lines_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_settings_come_from_pyproject_then_environment_then_options(
    make_clip: MakeClip,
    syncnet_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`lipsync score` reads the same [tool.lipsync] table and LIPSYNC_* variables as the pytest gate."""
    clip = make_clip("cli_short_face.mp4", ClipSpec(seconds=3.0, width=160, height=160, marker=True, seed=22))
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        f'[tool.lipsync]\nprotocol = "cropped"\nfidelity = "clean"\nsyncnet_weights = "{syncnet_weights}"\n'
        'device = "cpu"\noffline = true\nmin_track = 60\n'
    )
    monkeypatch.chdir(project / "sub")  # the nearest pyproject.toml upwards, as pytest finds its rootdir
    for name in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LIPSYNC_PROTOCOL", "pipeline")
    monkeypatch.setenv("LIPSYNC_DETECTOR", "pytest_lipsync.synthetic.faces:marker_detector")
    out = tmp_path / "layers.json"

    assert main(["score", str(clip), "--min-track", "50", "--json", str(out), "-q"]) == 0  # 75 frames: 50 < 75 < 100
    settings = json.loads(out.read_text())["settings"]
    assert (settings["protocol"], settings["fidelity"], settings["min_track"]) == ("pipeline", "clean", 50)
    capsys.readouterr()

    assert main(["score", str(clip), "--min-track", "80", "-q"]) == 1
    assert "no_face_track" in capsys.readouterr().out

    (project / "pyproject.toml").write_text("[tool.lipsync]\nmin_tracks = 60\n")
    assert main(["score", str(clip), "-q"]) == 2
    error = capsys.readouterr().err
    assert "min_tracks" in error and str(project / "pyproject.toml") in error


def _paired_project(clip: Path, root: Path, syncnet_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``out/take_7.mp4`` paired by its project-relative key, ``out/b/take_8.mp4`` by a key relative to ``out``."""
    project = root / "paired"
    (project / "out" / "b").mkdir(parents=True)
    (project / "truth").mkdir()
    (project / "sub").mkdir()
    for video in ("out/take_7.mp4", "out/b/take_8.mp4", "truth/original.mp4"):  # no name in common with the truth
        (project / video).write_bytes(clip.read_bytes())
    (project / "pyproject.toml").write_text(
        f'[tool.lipsync]\nprotocol = "cropped"\nfidelity = "clean"\nsyncnet_weights = "{syncnet_weights}"\n'
        'device = "cpu"\noffline = true\n[tool.lipsync.pairs]\n"out/take_7.mp4" = "truth/original.mp4"\n'
        '"b/take_8.mp4" = "truth/original.mp4"\n'
    )
    for name in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(name)
    return project


@pytest.mark.slow
def test_keys_and_pairs_are_project_relative_from_any_directory_and_with_workers(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON names a video by its key (relative to the pyproject's directory), however the folder was given;
    ``[tool.lipsync.pairs]`` pairs by that key, in one process and in a pool."""
    project = _paired_project(
        make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11)), tmp_path, syncnet_weights, monkeypatch
    )
    monkeypatch.chdir(project / "sub")
    runs = {
        "relative": ["../out"],
        "absolute": [str(project / "out")],
        "workers": [str(project / "out"), "--workers", "2"],
    }
    for name, arguments in runs.items():
        assert main(["score", *arguments, "--json", str(tmp_path / f"{name}.json"), "-q"]) == 1, name
        videos = {video["path"]: video for video in json.loads((tmp_path / f"{name}.json").read_text())["videos"]}
        assert sorted(videos) == ["out/b/take_8.mp4", "out/take_7.mp4"], name
        paired, unpaired = videos["out/take_7.mp4"], videos["out/b/take_8.mp4"]
        assert paired["error"] is None and paired["metrics"]["ssim"] == 1.0, name
        assert (paired["quality"]["match"], paired["quality"]["reference"]) == (
            "explicit",
            str(project / "truth" / "original.mp4"),
        )
        assert unpaired["error"]["kind"] == "no_reference", name
        assert unpaired["error"]["message"].endswith('"out/b/take_8.mp4" = "<ground-truth file>"'), name


def test_a_dangling_symlink_is_a_video_that_is_not_found(
    syncnet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    args = ["score", "out", "--protocol", "cropped", "--device", "cpu", "--syncnet-weights", str(syncnet_weights)]
    assert main([*args, "--json", "r.json", "-q"]) == 1
    (video,) = json.loads((tmp_path / "r.json").read_text())["videos"]
    assert (video["path"], video["error"]["kind"]) == ("out/gone.mp4", "not_found")


def test_a_folder_without_videos_beside_other_arguments_is_a_usage_error(
    make_clip: MakeClip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("")
    flags = ["--protocol", "cropped", "--offline", "--syncnet-weights", str(tmp_path / "absent.model")]
    assert main(["score", str(clip), str(tmp_path / "empty"), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"lipsync: error: {tmp_path / 'empty'}: holds no video file (searched recursively for .avi")
    assert "absent.model" not in error
    assert main(["score", str(clip), str(tmp_path / "nowhere"), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"lipsync: error: {tmp_path / 'nowhere'}: no such file or folder")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["score", "CLIP", "--json", "taken"], "taken: is a directory, not a file to write the results JSON to"),
        (
            ["score", "CLIP", "--json", "plain.txt/r.json"],
            "plain.txt/r.json: cannot be written: plain.txt is a file, not a directory",
        ),
        (["merge", "r.json", "-o", "taken"], "taken: is a directory, not a file to write the merged report to"),
        (
            ["report", "r.json", "-o", "plain.txt"],
            "plain.txt: is a file, not a directory to write the HTML report into",
        ),
        (["report", "r.json", "-o", "html", "--baseline", "taken"], "taken: is a directory, not a baseline file"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(
    make_clip: MakeClip,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    words: str,
) -> None:
    from pytest_lipsync.results import RunRecord

    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "plain.txt").write_text("")
    (tmp_path / "r.json").write_text(json.dumps(Report(RunRecord("0", {}, (), "cpu"), ()).to_dict()))
    clip = str(make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11)))
    flags = ["--offline", "--syncnet-weights", "absent.model"] if command[0] == "score" else []
    assert main([clip if word == "CLIP" else word for word in command] + flags) == 2
    assert capsys.readouterr().err.startswith(f"lipsync: error: {words}")


def test_custom_weights_are_called_out_under_the_table(
    make_clip: MakeClip, syncnet_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11))
    args = ["score", str(clip), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "-q"]
    assert main([*args, "--syncnet-weights", str(syncnet_weights)]) == 0
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith(f"note: scored with custom weights (syncnet {syncnet_weights} (SHA-256 ")
    assert "not comparable with published LSE-D/LSE-C" in note
