"""Pass 1's JPEG files kept for pass 2: exact round trip, the budget, full disks, and nothing left behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from pytest_lipsync.media import spill
from pytest_lipsync.media.spill import SpilledFrames

FRAMES = [bytes([k]) * (100 + 37 * k) for k in range(6)] + [b""]


def test_kept_frames_pass_through_and_read_back_byte_for_byte() -> None:
    with SpilledFrames(budget=10**6) as kept:
        assert list(kept.keep(FRAMES)) == FRAMES
        assert kept.stored == len(FRAMES) and kept.holds(len(FRAMES))
        assert list(kept.read(3)) == FRAMES[:3]
        assert list(kept.read(len(FRAMES))) == FRAMES  # read again from the start
    assert kept.stored == 0 and not kept.holds(1)


def test_past_the_budget_the_copy_is_dropped_and_frames_still_pass() -> None:
    budget = sum(map(len, FRAMES[:3]))
    kept = SpilledFrames(budget=budget)
    passed = []
    for frame in kept.keep(FRAMES):
        passed.append(frame)
        assert kept.stored == (len(passed) if len(passed) <= 3 else 0)
    assert passed == FRAMES
    assert not kept.holds(1)
    with pytest.raises(ValueError, match="7 frames asked for, 0 kept"):
        next(kept.read(7))


def test_a_failing_write_drops_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = SpilledFrames(budget=10**6)
    list(kept.keep(FRAMES[:2]))
    file = kept._file
    assert file is not None

    def full(data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file, "write", full)
    assert list(kept.keep(FRAMES[2:])) == FRAMES[2:]
    assert not kept.holds(2) and file.closed


def test_without_a_temporary_directory_nothing_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    kept = SpilledFrames(budget=10**6)
    assert list(kept.keep(FRAMES)) == FRAMES
    assert not kept.holds(1)


def test_the_file_has_no_name_and_the_default_budget_is_half_the_free_space(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with SpilledFrames() as kept:
        list(kept.keep(FRAMES))
        assert list(tmp_path.iterdir()) == []
        # Other processes write to the same disk between the two readings: equal to within 1%, not exactly.
        assert kept._budget == pytest.approx(spill.free_space_budget(), rel=0.01)
    statvfs = os.statvfs(tmp_path)
    assert spill.free_space_budget() == pytest.approx(statvfs.f_bavail * statvfs.f_frsize / 2, rel=0.01)


def test_a_file_closed_under_a_writer_drops_the_copy_instead_of_raising() -> None:
    """A failing video closes the file while the decoding thread may still be writing the next frame."""
    kept = SpilledFrames(budget=10**6)
    list(kept.keep(FRAMES[:2]))
    file = kept._file
    assert file is not None
    file.close()
    assert list(kept.keep(FRAMES[2:])) == FRAMES[2:]
    assert not kept.holds(1)
