"""Atomic writes: readers see the old file or the new one, and the new one is as shareable as ``open()`` makes it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_lipsync.results import write_json_atomic, write_text_atomic


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
        write_text_atomic(target, None)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["baseline.json"]
