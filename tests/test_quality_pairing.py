"""Which reference each generated video gets, and when the two can be compared frame by frame."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_lipsync.errors import ConfigError, ReferenceMismatchError
from pytest_lipsync.quality.accumulate import compare_streams
from pytest_lipsync.quality.alignment import align_lengths, needs_resize, resize_frames
from pytest_lipsync.quality.pairing import ReferenceMatch, ReferenceTree, match_reference
from pytest_lipsync.quality.settings import QualitySettings


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    generated, reference = tmp_path / "out", tmp_path / "gt"
    touch(generated, "a/b.mp4")
    reference.mkdir()
    return generated, reference


def match(dirs: tuple[Path, Path], pairs: dict[str, Path] | None = None, tree: bool = True) -> ReferenceMatch:
    generated, reference = dirs
    return match_reference(
        generated / "a/b.mp4", "out/a/b.mp4", generated, ReferenceTree.scan(reference) if tree else None, pairs
    )


# ---------------------------------------------------------------------------------------------- pairing


def test_same_relative_path_wins_over_stems(dirs: tuple[Path, Path]) -> None:
    touch(dirs[1], "a/b.mp4", "a/b.mkv", "x/b.avi")
    found = match(dirs)
    assert (found.reference, found.rule) == (dirs[1] / "a/b.mp4", "path")


def test_stem_in_the_same_directory_with_another_container(dirs: tuple[Path, Path]) -> None:
    touch(dirs[1], "a/b.mkv", "x/b.avi", "a/b.txt")
    found = match(dirs)
    assert (found.reference, found.rule) == (dirs[1] / "a/b.mkv", "stem")


def test_unique_stem_anywhere_in_the_tree(dirs: tuple[Path, Path]) -> None:
    touch(dirs[1], "deep/er/b.MOV", "a/c.mp4")
    found = match(dirs)
    assert (found.reference, found.rule) == (dirs[1] / "deep/er/b.MOV", "stem-anywhere")


def test_no_reference_is_a_result_saying_where_it_was_looked_for(dirs: tuple[Path, Path]) -> None:
    touch(dirs[1], "a/c.mp4", "a/b.json", "a/b.wav")
    found = match(dirs)
    assert (found.video, found.reference, found.rule) == (dirs[0] / "a/b.mp4", None, "none")
    assert found.error is not None and found.error.kind == "no_reference"
    assert found.error.message == (
        f'{dirs[0] / "a/b.mp4"}: has no ground truth in {dirs[1]}: no "a/b.mp4" there, and no video named "b.*". '
        f"Add its ground truth as {dirs[1] / 'a/b.mp4'} (any video container), or name it in [tool.lipsync.pairs]: "
        '"out/a/b.mp4" = "<ground-truth file>"'
    )
    without_tree = match(dirs, tree=False)
    assert without_tree.rule == "none" and without_tree.error is not None and without_tree.error.kind == "no_reference"


@pytest.mark.parametrize(
    ("names", "listed"),
    [(("a/b.mkv", "a/b.avi", "x/b.mp4"), ("a/b.avi", "a/b.mkv")), (("x/b.mp4", "y/b.webm"), ("x/b.mp4", "y/b.webm"))],
)
def test_ambiguous_stems_are_the_videos_error_listing_the_candidates(
    dirs: tuple[Path, Path], names: tuple[str, ...], listed: tuple[str, ...]
) -> None:
    touch(dirs[1], *names)
    found = match(dirs)
    assert (found.reference, found.rule) == (None, "none")
    error = found.error
    assert error is not None and error.kind == "reference_mismatch"
    candidates = [str(dirs[1] / name) for name in listed]
    assert error.facts["candidates"] == candidates
    assert error.message.startswith(f"{dirs[0] / 'a/b.mp4'}: {len(listed)} references match by the file stem")
    assert all(candidate in error.message for candidate in candidates)
    assert f'[tool.lipsync.pairs], e.g. "out/a/b.mp4" = "{candidates[0]}"' in error.message


def test_explicit_pair_by_the_videos_key_comes_first(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    touch(dirs[1], "a/b.mp4")
    touch(tmp_path, "elsewhere/truth.mkv")
    found = match(
        dirs, {"./out/a/b.mp4": tmp_path / "elsewhere/truth.mkv", "out/a/other.mp4": tmp_path / "nothing.mp4"}
    )
    assert (found.reference, found.rule) == (tmp_path / "elsewhere/truth.mkv", "explicit")
    assert match(dirs, {"out/a/b.mp4": tmp_path / "elsewhere/truth.mkv"}, tree=False).rule == "explicit"
    assert match(dirs, {"a/b.mp4": tmp_path / "elsewhere/truth.mkv"}).rule == "path"  # relative to out/: not its key


def test_explicit_pair_to_a_missing_file_is_a_configuration_error(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    touch(dirs[1], "a/b.mp4")
    with pytest.raises(ConfigError) as raised:
        match(dirs, {"out/a/b.mp4": tmp_path / "typo.mp4"})
    assert '"out/a/b.mp4"' in raised.value.message and str(tmp_path / "typo.mp4") in raised.value.message


def test_missing_reference_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        ReferenceTree.scan(tmp_path / "nope")
    assert raised.value.path == str(tmp_path / "nope")


# -------------------------------------------------------------------------------------- alignment rules


@pytest.mark.parametrize(("generated", "reference"), [(50, 50), (50, 52), (52, 50), (1, 1)])
def test_lengths_within_the_tolerance_compare_the_common_prefix(generated: int, reference: int) -> None:
    lengths = align_lengths(generated, reference, 2)
    assert lengths.compared == min(generated, reference)
    assert lengths.mismatch == generated - reference


@pytest.mark.parametrize(("generated", "reference", "tolerance"), [(50, 53, 2), (53, 50, 2), (50, 51, 0)])
def test_lengths_beyond_the_tolerance_are_an_error_giving_both(generated: int, reference: int, tolerance: int) -> None:
    with pytest.raises(ReferenceMismatchError) as raised:
        align_lengths(generated, reference, tolerance, video=Path("out/a.mp4"), reference=Path("gt/a.mp4"))
    message = raised.value.message
    assert message.startswith(f"out/a.mp4: has {generated} frames")
    assert f"gt/a.mp4 has {reference}" in message and f"max_length_mismatch = {tolerance}" in message
    assert raised.value.facts["generated_frames"] == generated and raised.value.facts["reference_frames"] == reference


def test_nothing_to_compare_is_an_error() -> None:
    with pytest.raises(ReferenceMismatchError, match="no frame to compare"):
        align_lengths(2, 0, 2)


def test_sizes() -> None:
    assert needs_resize((64, 48), (64, 48), resize_reference=False) is False
    assert needs_resize((64, 48), (128, 96), resize_reference=True) is True
    with pytest.raises(ReferenceMismatchError) as raised:
        needs_resize(
            (1280, 720), (640, 360), resize_reference=False, video=Path("out/a.mp4"), reference=Path("gt/a.mp4")
        )
    assert raised.value.message.startswith("out/a.mp4: is 1280x720 but its reference gt/a.mp4 is 640x360")
    assert "resize_reference = true" in raised.value.message
    assert raised.value.facts["generated_size"] == [1280, 720] and raised.value.facts["reference_size"] == [640, 360]


# ---------------------------------------------------------------------------------------------- streams


def frames(count: int, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    stack = [
        np.stack([128 + 100 * np.sin(columns / 5 + t + c) * np.cos(rows / 7) for c in range(3)], -1)
        for t in range(count)
    ]
    return np.clip(np.array(stack) + rng.normal(0, 4, (count, height, width, 3)), 0, 255).astype(np.uint8)


def batches(video: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(video), size):
        yield video[start : start + size]


def skimage_series(gt: np.ndarray, gen: np.ndarray) -> tuple[list[float], list[float]]:
    return (
        [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(gt, gen)],
        [structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in zip(gt, gen)],
    )


@pytest.mark.parametrize(("generated_frames", "reference_frames"), [(10, 10), (10, 12), (12, 10)])
def test_streams_with_different_batching_and_lengths(generated_frames: int, reference_frames: int) -> None:
    gt, gen = frames(reference_frames, seed=1), frames(generated_frames, seed=2)
    result = compare_streams(batches(gen, 3), batches(gt, 4), QualitySettings())
    common = min(generated_frames, reference_frames)
    expected_psnr, expected_ssim = skimage_series(gt[:common], gen[:common])
    np.testing.assert_allclose(result.psnr.values, expected_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.ssim.values, expected_ssim, rtol=0, atol=1e-6)
    document = result.to_json()
    assert (document["frames"], document["generated_frames"], document["reference_frames"]) == (
        common,
        generated_frames,
        reference_frames,
    )
    assert document["length_mismatch"] == generated_frames - reference_frames
    assert document["resized_reference"] is False


def test_streams_too_different_in_length_fail_with_both_lengths() -> None:
    with pytest.raises(ReferenceMismatchError) as raised:
        compare_streams(batches(frames(10), 4), batches(frames(17), 4), QualitySettings(max_length_mismatch=6))
    assert raised.value.facts["generated_frames"] == 10 and raised.value.facts["reference_frames"] == 17


def test_streams_of_different_sizes_fail_unless_resizing() -> None:
    gen, gt = frames(4, 24, 32, seed=1), frames(4, 60, 80, seed=2)
    with pytest.raises(ReferenceMismatchError, match=r"is 32x24 but its reference .* is 80x60"):
        compare_streams(batches(gen, 2), batches(gt, 2), QualitySettings(), video=Path("out/a.mp4"))

    result = compare_streams(batches(gen, 2), batches(gt, 3), QualitySettings(resize_reference=True))
    resized = np.stack([cv2.resize(frame, (32, 24), interpolation=cv2.INTER_AREA) for frame in gt])
    expected_psnr, expected_ssim = skimage_series(resized, gen)
    np.testing.assert_allclose(result.psnr.values, expected_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.ssim.values, expected_ssim, rtol=0, atol=1e-6)
    assert result.resized_reference is True
    assert resize_frames(gt, (32, 24)).shape == (4, 24, 32, 3)


def test_streams_hold_a_bounded_number_of_batches() -> None:
    """However long the video, only the batches in flight are alive (no whole-video arrays)."""
    alive: list[weakref.ref[np.ndarray]] = []
    most = 0

    def tracked(seed: int) -> Iterator[np.ndarray]:
        nonlocal most
        for index in range(40):
            most = max(most, sum(ref() is not None for ref in alive))
            batch = frames(2, 12, 12, seed=seed + index)
            alive.append(weakref.ref(batch))
            yield batch

    result = compare_streams(tracked(0), tracked(100), QualitySettings())
    assert result.frames == 80
    assert most <= 4
