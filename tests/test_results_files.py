"""Results files: atomic writes (readers see the old file or the new one, as shareable as ``open()`` makes it),
and reading them back, where a document that does not follow the schema is refused naming the file and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.results import (
    Report,
    RunRecord,
    ScoreError,
    TrackScore,
    VideoScore,
    WeightsRecord,
    write_json_atomic,
    write_text_atomic,
)

ROOT = Path(__file__).parents[1]
# A value no report has: replaced in the JSON text by a number that no double can hold.
HUGE = 123456.5


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_written_files_get_the_umask_mode_not_mkstemps_owner_only(tmp_path: Path, umask_027: None) -> None:
    target = tmp_path / "report" / "results.json"
    write_json_atomic(target, {"videos": []})
    assert target.stat().st_mode & 0o777 == 0o640
    assert json.loads(target.read_text()) == {"videos": []}
    assert os.umask(0o027) == 0o027  # reading the umask put it back


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_text_atomic(target, None)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["baseline.json"]


def _document() -> dict[str, Any]:
    """A valid report of two videos, one with tracks and ground truth, one unscorable."""
    series = {"mean": 30.0, "worst": {"frame": 3, "value": 24.5}, "per_frame": [30.0, 31.0, 29.0, 24.5]}
    quality = {
        "reference": "gt/a.mp4",
        "match": "path",
        "psnr": series,
        "ssim": {**series, "mean": 0.9},
        "frames": 4,
        "error": None,
    }
    track = TrackScore(0, 40, 36, 7.0, 5.0, 1, (9.0, 7.0, 9.5), (4.0, 4.5))
    good = VideoScore(
        "out/a.mp4",
        {"lse_d": 7.0, "lse_c": 5.0, "offset": 1.0, "psnr": 30.0, "ssim": 0.9},
        (track,),
        frames=41,
        quality=quality,
    )
    broken = VideoScore("out/b.mp4", error=ScoreError("unreadable", "out/b.mp4: cannot be opened as a video"))
    run = RunRecord("0.1.0", {"protocol": "cropped"}, (WeightsRecord("syncnet", "w", "a" * 64, True),), "cpu")
    return json.loads(json.dumps(Report(run, (good, broken)).to_dict()))  # no dictionary shared by two fields


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted ``path`` (list indices as numbers) of a document to ``value``."""

    def mutate(document: dict[str, Any]) -> None:
        *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
        target: Any = document
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (_set("videos.0.metrics.lse_d", HUGE), "videos[0].metrics.lse_d must be a finite number or null, not inf"),
        (_set("videos.0.frames", HUGE), "videos[0].frames must be a whole number, not inf"),
        (_set("videos.0.frames", -1), "videos[0].frames must be a whole number from 0, not -1"),
        (_set("videos.0.tracks.0.lse_c", "5"), "videos[0].tracks[0].lse_c must be a finite number or null, not '5'"),
        (_set("videos.0.tracks", {"lse_d": 7.0}), "videos[0].tracks must be a list, not {'lse_d': 7.0}"),
        (
            _set("videos.0.tracks.0.mean_dist", [1.0, "x"]),
            "videos[0].tracks[0].mean_dist[1] must be a finite number or null, not 'x'",
        ),
        (_set("videos.0.quality", "good"), "videos[0].quality must be an object or null, not 'good'"),
        (_set("videos.0.quality.reference", 5), "videos[0].quality.reference must be a string or null, not 5"),
        (_set("videos.0.quality.psnr.per_frame", "30"), "videos[0].quality.psnr.per_frame must be a list, not '30'"),
        (
            _set("videos.0.quality.ssim.worst.frame", 1.5),
            "videos[0].quality.ssim.worst.frame must be a whole number, not 1.5",
        ),
        (_set("videos.0.quality.error", "none"), "videos[0].quality.error must be an object or null, not 'none'"),
        (_set("videos.1.error", "boom"), "videos[1].error must be an object or null, not 'boom'"),
        (_set("videos.1.error.kind", None), "videos[1].error.kind must be a string, not None"),
        (_set("videos.0.path", "./out/a.mp4"), "videos[0].path './out/a.mp4' is not a video key (write 'out/a.mp4')"),
        (_set("videos.0.path", ""), "videos[0].path '' is not a video key"),
        (_set("videos.0.timings", {"lse": "fast"}), "videos[0].timings.lse must be a finite number, not 'fast'"),
        (_set("weights.0.sha256", 5), "weights[0].sha256 must be a string, not 5"),
        (_set("weights.0.custom", "yes"), "weights[0].custom must be true or false, not 'yes'"),
        (_set("settings", []), "settings must be an object, not []"),
        (_set("device", None), "device must be a string, not None"),
        (_set("videos", {}), "videos must be a list, not {}"),
        (_set("videos.1", 7), "videos[1] must be an object, not 7"),
        (_set("shard", "3/2"), "shard must be \"i/n\" with 1 <= i <= n, not '3/2'"),
    ],
)
def test_a_malformed_report_is_refused_naming_the_file_and_field(
    mutate: Callable[[dict[str, Any]], None], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = _document()
    mutate(document)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document).replace(repr(HUGE), "1e400"))
    commands = (
        ["gate", str(path)],
        ["merge", str(path), "-o", str(tmp_path / "all.json")],
        ["report", str(path), "-o", str(tmp_path / "html")],
    )
    for command in commands:
        assert main(command) == 2, command
        assert f"lipsync: error: {path}: is not a pytest-lipsync report ({problem})" in capsys.readouterr().err
    assert not (tmp_path / "all.json").exists() and not (tmp_path / "html").exists()


def test_the_valid_document_round_trips() -> None:
    document = _document()
    assert Report.from_dict(document).to_dict() == document


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer that never comes: the command must not open it."""
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    for command in (
        ["gate", str(fifo)],
        ["merge", str(fifo), "-o", str(tmp_path / "all.json")],
        ["report", str(fifo), "-o", "html"],
    ):
        done = _lipsync(command, tmp_path)
        assert done.returncode == 2
        assert f"lipsync: error: {fifo}: is not a regular file. Pass a report written by" in done.stderr


def test_gate_shows_a_name_that_is_not_utf8_with_its_byte_escaped(tmp_path: Path) -> None:
    """Such a name is a lone surrogate in Python, which a UTF-8 stdout refuses (pytest's capture would not)."""
    document = _document()
    document["videos"][1]["path"] = os.fsdecode(b"out/take\xff.mp4")
    document["collected"] = sorted(video["path"] for video in document["videos"])
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    done = _lipsync(["gate", str(results)], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "out/take\\xff.mp4: unreadable: out/b.mp4: cannot be opened as a video" in done.stdout


def _lipsync(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in a child process: a hang there fails this test (at the guard) instead of stopping the suite."""
    code = "import sys; from pytest_lipsync.cli.app import main; sys.exit(main(sys.argv[1:]))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-c", code, *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
