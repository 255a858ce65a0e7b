"""Output paths: refused before any work when they cannot be written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lipsync.baseline import load_baseline
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.outputs import check_file_output, check_folder_output


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
    expected = f"{tmp_path / 'plain.txt' / 'sub' / 'r.json'}: cannot be written: {tmp_path / 'plain.txt'} is a file, not a directory"
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
    assert raised.value.message.startswith(f"{tmp_path / 'plain.txt'}: is a file, not a directory to write the HTML report into")


def test_a_baseline_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_baseline(tmp_path)
    assert raised.value.message.startswith(f"{tmp_path}: is a directory, not a baseline file")
    assert load_baseline(tmp_path / "absent.json") is None
