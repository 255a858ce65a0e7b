"""From the user's arguments to the videos to score: keys, listing, ground truth and shard choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.scoring.entry import VideoEntry
from pytest_lipsync.session.videos import list_videos, select_shard, video_key

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts")


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def keys(entries: tuple[VideoEntry, ...]) -> list[str]:
    return [entry.key for entry in entries]


# ------------------------------------------------------------------------------------------------- keys


def test_a_key_is_the_path_relative_to_the_project_root_however_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    assert video_key(root / "out" / "a.mp4", root) == "out/a.mp4"
    assert video_key(root / "sub" / ".." / "." / "out" / "a.mp4", root) == "out/a.mp4"
    monkeypatch.chdir(root / "sub")
    assert video_key(Path("../out/a.mp4"), root) == "out/a.mp4"
    monkeypatch.chdir(root)
    assert video_key(Path("./out/a.mp4"), root) == "out/a.mp4"


def test_a_key_outside_the_project_is_the_absolute_path(tmp_path: Path) -> None:
    assert (
        video_key(tmp_path / "elsewhere" / "a.mp4", tmp_path / "project")
        == (tmp_path / "elsewhere" / "a.mp4").as_posix()
    )


def test_a_key_through_a_symlinked_project_directory_is_still_relative(tmp_path: Path) -> None:
    root = tmp_path / "project"
    touch(root, "out/a.mp4")
    (tmp_path / "alias").symlink_to(root)
    assert video_key(tmp_path / "alias" / "out" / "a.mp4", root) == "out/a.mp4"
    assert video_key(root / "out" / "a.mp4", tmp_path / "alias") == "out/a.mp4"


# ---------------------------------------------------------------------------------------------- listing


def test_folders_are_searched_recursively_for_video_files_sorted_by_key(tmp_path: Path) -> None:
    touch(tmp_path, "out/b.mp4", "out/a/z.MKV", "out/a/notes.txt", "out/a/clip.wav", "single/c.avi")
    listing = list_videos([tmp_path / "out", tmp_path / "single" / "c.avi"], tmp_path)
    assert keys(listing.entries) == ["out/a/z.MKV", "out/b.mp4", "single/c.avi"]
    assert listing.entries[1].path == tmp_path / "out" / "b.mp4" and listing.unmatched == ()


def test_symlinked_folders_and_files_are_followed_and_loops_end(tmp_path: Path) -> None:
    touch(tmp_path, "out/real/b.mp4", "elsewhere/deep/a.mp4", "store/c.mkv")
    (tmp_path / "out" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "out" / "real" / "up").symlink_to(tmp_path / "out")  # a loop back to the top
    (tmp_path / "out" / "self").symlink_to("self")  # a link to itself
    (tmp_path / "out" / "c.mkv").symlink_to(tmp_path / "store" / "c.mkv")
    listing = list_videos([tmp_path / "out"], tmp_path)
    assert keys(listing.entries) == ["out/c.mkv", "out/linked/deep/a.mp4", "out/real/b.mp4"]


def test_a_dangling_video_symlink_is_listed_so_that_it_fails_as_not_found(tmp_path: Path) -> None:
    touch(tmp_path, "out/a.mp4")
    (tmp_path / "out" / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    (tmp_path / "out" / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    assert keys(list_videos([tmp_path / "out"], tmp_path).entries) == ["out/a.mp4", "out/gone.mp4"]


def test_globs_select_video_files_and_the_videos_of_matching_folders(tmp_path: Path) -> None:
    touch(tmp_path, "out/a.mp4", "out/notes.txt", "out/x/b.mp4", "out/x/y/c.mp4", "out/z/d.mkv")
    assert keys(list_videos([tmp_path / "out" / "*.mp4"], tmp_path).entries) == ["out/a.mp4"]
    assert keys(list_videos([tmp_path / "out" / "**" / "*.mp4"], tmp_path).entries) == [
        "out/a.mp4",
        "out/x/b.mp4",
        "out/x/y/c.mp4",
    ]
    assert keys(list_videos([tmp_path / "out" / "[xz]"], tmp_path).entries) == [
        "out/x/b.mp4",
        "out/x/y/c.mp4",
        "out/z/d.mkv",
    ]


def test_a_folder_or_glob_without_videos_is_unmatched_and_says_why(tmp_path: Path) -> None:
    touch(tmp_path, "out/a.mp4", "empty/notes.txt")
    listing = list_videos(
        [tmp_path / "out", tmp_path / "empty", tmp_path / "out" / "*.mkv", tmp_path / "gone" / "*.mp4"], tmp_path
    )
    assert keys(listing.entries) == ["out/a.mp4"]
    assert [(item.key, item.message) for item in listing.unmatched] == [
        (
            "empty",
            f"{tmp_path / 'empty'}: holds no video file (searched recursively for {', '.join(sorted(VIDEO_SUFFIXES))})",
        ),
        ("out/*.mkv", f"{tmp_path / 'out' / '*.mkv'}: matches no video file"),
        ("gone/*.mp4", f"{tmp_path / 'gone' / '*.mp4'}: matches no video file"),
    ]


def test_a_missing_folder_is_a_usage_error_and_a_missing_video_file_is_a_video(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        list_videos([tmp_path / "generated"], tmp_path)
    assert raised.value.message.startswith(f"{tmp_path / 'generated'}: no such file or folder")
    assert keys(list_videos([tmp_path / "out" / "a.mp4"], tmp_path).entries) == ["out/a.mp4"]


def test_an_unreadable_folder_is_a_usage_error_not_a_silent_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    touch(tmp_path, "out/locked/a.mp4")
    scandir = os.scandir

    def refuse(path: str | os.PathLike[str]) -> object:
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'out' / 'locked'}: cannot be listed: Permission denied"):
        list_videos([tmp_path / "out"], tmp_path)


# ---------------------------------------------------------------------------------------------- pairing


def test_pairs_are_keyed_by_the_project_relative_key(tmp_path: Path) -> None:
    touch(tmp_path, "out/take_7.mp4", "out/b/take_8.mp4", "truth/original.mkv")
    truth = tmp_path / "truth" / "original.mkv"
    pairs = {"out/take_7.mp4": truth, "b/take_8.mp4": truth}
    paired, unpaired = list_videos([tmp_path / "out"], tmp_path, pairs=pairs).entries[::-1]
    assert (paired.key, paired.reference, paired.ground_truth and paired.ground_truth.rule) == (
        "out/take_7.mp4",
        truth,
        "explicit",
    )
    assert unpaired.key == "out/b/take_8.mp4" and unpaired.reference is None
    assert unpaired.reference_error is not None and unpaired.reference_error.kind == "no_reference"
    assert unpaired.reference_error.message == (
        f'{tmp_path / "out/b/take_8.mp4"}: has no ground truth: [tool.lipsync.pairs] has no entry "out/b/take_8.mp4". '
        'Add one: "out/b/take_8.mp4" = "<ground-truth file>"'
    )


def test_the_reference_tree_mirrors_each_folder_argument(tmp_path: Path) -> None:
    touch(tmp_path, "out/a/b.mp4", "out/a/c.mp4", "gt/a/b.mkv")
    found, orphan = list_videos([tmp_path / "out"], tmp_path, reference=tmp_path / "gt").entries
    assert (found.reference, found.ground_truth and found.ground_truth.rule) == (tmp_path / "gt/a/b.mkv", "stem")
    assert orphan.reference_error is not None and orphan.reference_error.message.endswith(
        'or name it in [tool.lipsync.pairs]: "out/a/c.mp4" = "<ground-truth file>"'
    )


def test_ambiguous_ground_truth_is_the_videos_error_and_a_pair_to_nothing_a_usage_error(tmp_path: Path) -> None:
    touch(tmp_path, "out/a.mp4", "gt/x/a.mp4", "gt/y/a.mkv")
    (entry,) = list_videos([tmp_path / "out"], tmp_path, reference=tmp_path / "gt").entries
    assert entry.reference_error is not None and entry.reference_error.kind == "reference_mismatch"
    with pytest.raises(ConfigError, match='maps "out/a.mp4" to .*typo.mp4, which is not a file'):
        list_videos([tmp_path / "out"], tmp_path, pairs={"out/a.mp4": tmp_path / "typo.mp4"})


# ------------------------------------------------------------------------------------------------ shard


def test_shards_split_by_size_and_together_hold_every_video(tmp_path: Path) -> None:
    for name, size in (("a.mp4", 30), ("b.mp4", 20), ("c.mp4", 20)):
        (tmp_path / name).write_bytes(b"x" * size)
    entries = list_videos([tmp_path], tmp_path).entries
    assert select_shard(entries, None) == entries
    assert keys(select_shard(entries, "1/2")) == ["a.mp4"] and keys(select_shard(entries, "2/2")) == ["b.mp4", "c.mp4"]
