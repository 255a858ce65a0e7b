"""Output paths: refused before any work when they cannot be written, and atomic writes that clean up after
a writer that was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import load_baseline
from pytest_lipsync.outputs import check_file_output, check_folder_output
from pytest_lipsync.results import write_text_atomic


def test_a_file_output_may_be_new_in_new_folders_or_replace_a_file(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    check_file_output(tmp_path / "old.json", "the results JSON")
    check_file_output(tmp_path / "new" / "deeper" / "r.json", "the results JSON")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_file_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        check_file_output(tmp_path, "the results JSON")
    assert raised.value.message.startswith(f"{tmp_path}: is a directory, not a file to write the results JSON to")


def test_a_file_in_the_way_of_the_folders_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("")
    with pytest.raises(ConfigError) as raised:
        check_file_output(tmp_path / "plain.txt" / "sub" / "r.json", "the results JSON")
    expected = (
        f"{tmp_path / 'plain.txt' / 'sub' / 'r.json'}: cannot be written: "
        f"{tmp_path / 'plain.txt'} is a file, not a directory"
    )
    assert raised.value.message.startswith(expected)


def test_a_place_where_no_file_can_be_made_is_refused() -> None:
    """``/proc`` takes no new files, whoever asks (root included)."""
    with pytest.raises(ConfigError, match=r"^/proc/r.json: cannot be written: /proc is not writable \("):
        check_file_output(Path("/proc/r.json"), "the results JSON")


def test_a_folder_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("")
    check_folder_output(tmp_path / "html", "the HTML report")
    with pytest.raises(ConfigError) as raised:
        check_folder_output(tmp_path / "plain.txt", "the HTML report")
    assert raised.value.message.startswith(
        f"{tmp_path / 'plain.txt'}: is a file, not a directory to write the HTML report into"
    )


def test_a_baseline_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_baseline(tmp_path)
    assert raised.value.message.startswith(f"{tmp_path}: is a directory, not a baseline file")
    assert load_baseline(tmp_path / "absent.json") is None


def _finished_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_atomic_write_removes_the_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    dead = tmp_path / f".r.json.{_finished_pid()}.abc123.tmp"
    live = tmp_path / f".r.json.{os.getpid()}.def456.tmp"  # a writer still running (this process)
    ancient = tmp_path / ".r.json.ghi789.tmp"  # no writer id: stale once old
    fresh = tmp_path / ".r.json.jkl012.tmp"
    other = tmp_path / f".other.json.{_finished_pid()}.mno345.tmp"  # another file's
    for path in (dead, live, ancient, fresh, other):
        path.write_text("partial")
    day_ago = time.time() - 24 * 3600
    os.utime(ancient, (day_ago, day_ago))

    write_text_atomic(target, "{}\n")

    assert target.read_text() == "{}\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in (target, live, fresh, other))
