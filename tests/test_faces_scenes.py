"""PROTOCOL section 3 (scene cuts) against a literal re-implementation of PySceneDetect 0.5.x's ContentDetector.

The literal version is the 0.5.x algorithm as the reference ran it: subsample ``[::d, ::d]`` by frame width,
mean absolute difference of H, S and V to the previous frame, averaged; a cut when that reaches 30 and at
least 15 frames have passed since the last cut, counting from frame 0. Production drives PySceneDetect 0.7.
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np
import pytest

from pytest_lipsync.faces.scenes import SceneCutter, subsampling_factor

OLD_DOWNSCALE_FACTORS = {3200: 12, 2100: 8, 1700: 6, 1200: 5, 900: 4, 600: 3, 400: 2}


def literal_factor(width: int) -> int:
    for min_width in sorted(OLD_DOWNSCALE_FACTORS, reverse=True):
        if width >= min_width:
            return OLD_DOWNSCALE_FACTORS[min_width]
    return 1


def literal_scenes(frames: np.ndarray, threshold: float = 30.0, min_scene_len: int = 15) -> list[tuple[int, int]]:
    d = literal_factor(frames.shape[2])
    last_hsv, last_cut, cuts = None, None, []
    for frame_num, frame in enumerate(frames):
        if last_cut is None:
            last_cut = frame_num
        small = np.ascontiguousarray(frame[::d, ::d])
        hsv = [channel.astype(np.int32) for channel in cv2.split(cv2.cvtColor(small, cv2.COLOR_BGR2HSV))]
        if last_hsv is not None:
            delta = [np.sum(np.abs(hsv[i] - last_hsv[i])) / float(hsv[i].size) for i in range(3)]
            if sum(delta) / 3.0 >= threshold and frame_num - last_cut >= min_scene_len:
                cuts.append(frame_num)
                last_cut = frame_num
        last_hsv = hsv
    bounds = [0, *cuts, len(frames)]
    return list(pairwise(bounds))


def shots(lengths: list[int], height: int, width: int, seed: int = 0) -> np.ndarray:
    """Shots alternating bright and dark saturated colours (every change a cut), with a little grey noise inside
    (the same on every channel, so that hue stays put)."""
    rng = np.random.default_rng(seed)
    colours = [(255, 40, 40), (0, 0, 60), (40, 255, 40), (60, 0, 0), (40, 40, 255), (0, 60, 0)]
    frames = []
    for shot, length in enumerate(lengths):
        base = np.array(colours[shot % len(colours)], dtype=np.int16)
        for _ in range(length):
            frames.append(np.clip(base + rng.integers(-12, 13, (height, width, 1)), 0, 255).astype(np.uint8))
    return np.stack(frames)


def cut_in_batches(frames: np.ndarray, sizes: list[int], **settings: float) -> list[tuple[int, int]]:
    cutter = SceneCutter(**settings)  # type: ignore[arg-type]  # int and float settings, joined to float
    start = 0
    for size in sizes:
        cutter.feed(frames[start : start + size])
        start += size
    cutter.feed(frames[start:])
    return cutter.finish()


@pytest.mark.parametrize(
    "width", [0, 399, 400, 599, 600, 899, 900, 1199, 1200, 1699, 1700, 1920, 2100, 3199, 3200, 7680]
)
def test_subsampling_factor_follows_the_old_table(width: int) -> None:
    assert subsampling_factor(width) == literal_factor(width)


def test_hard_cuts_equal_the_old_content_detector() -> None:
    """The cuts at 10 (within 15 frames of the start) and 50 (10 frames after the cut at 40) are suppressed."""
    frames = shots([10, 30, 10, 20, 25], height=90, width=640)  # 640 wide: subsampled by 3
    expected = literal_scenes(frames)
    assert expected == [(0, 40), (40, 70), (70, 95)]
    assert cut_in_batches(frames, [7, 1, 30, 16]) == expected
    assert cut_in_batches(frames, []) == expected


def test_a_cut_exactly_min_scene_len_after_the_last_is_kept() -> None:
    frames = shots([15, 15, 14, 20], height=40, width=64)
    assert cut_in_batches(frames, [20]) == literal_scenes(frames) == [(0, 15), (15, 30), (30, 64)]


def test_changes_only_on_rows_the_subsampling_skips_are_not_cuts() -> None:
    """From frame 20 on, every row except each third changes colour: at 640 wide (d = 3) the detector
    never sees it; at 320 wide (d = 1) it is a cut."""
    for width, expected in ((640, [(0, 40)]), (320, [(0, 20), (20, 40)])):
        frames = shots([40], height=60, width=width)
        rows = np.arange(60) % 3 != 0
        frames[20:, rows] = 255 - frames[20:, rows]
        assert cut_in_batches(frames, [13]) == literal_scenes(frames) == expected


def test_no_cut_is_one_scene_and_no_frame_no_scene() -> None:
    assert cut_in_batches(shots([33], height=30, width=40), [10]) == [(0, 33)]
    assert SceneCutter().finish() == []


def test_threshold_and_min_scene_len_are_settings() -> None:
    frames = shots([10, 30, 10, 20, 25], height=30, width=40)
    relaxed = cut_in_batches(frames, [], min_scene_len=5)
    assert relaxed == literal_scenes(frames, min_scene_len=5) == [(0, 10), (10, 40), (40, 50), (50, 70), (70, 95)]
    assert cut_in_batches(frames, [], scene_threshold=255.0) == [(0, 95)]


def test_a_burst_of_short_shots_is_cut_as_before_not_merged() -> None:
    """Shots of 13, 7, 8 and 1 frames after two long ones: 0.5.x cuts at 57 (20 frames after 37); the
    flash filter's default MERGE mode would swallow that cut."""
    frames = shots([21, 16, 13, 7, 8, 1], height=16, width=16)
    assert cut_in_batches(frames, [9]) == literal_scenes(frames) == [(0, 21), (21, 37), (37, 57), (57, 66)]
