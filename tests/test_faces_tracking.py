"""PROTOCOL section 5 (tracking, interpolation, smoothing, crop, audio span) against a literal re-implementation.

The literal tracker is the reference's loop over lists of dicts, removing taken detections from the list it
iterates; interpolation, the zero-padded median and the crop are per-frame loops with Python floats, and the
crop pads the whole frame with ``np.pad`` and slices it with Python's rules. Production must match them
exactly (bit for bit on boxes and smoothed values, pixel for pixel on crops).
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from pytest_lipsync.errors import ConfigError, VideoError
from pytest_lipsync.faces.crop import TrackCropper, audio_span, crop_face, median_filter
from pytest_lipsync.faces.tracking import Track, build_tracks

# ---------------------------------------------------------------- the literal protocol


def literal_iou(a: list[float], b: list[float]) -> float:
    x_a, y_a, x_b, y_b = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x_b - x_a) * max(0, y_b - y_a)
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def literal_track_shot(scenefaces: list[list[dict]], min_track: int, num_failed_det: int, min_face_size: float) -> list:
    tracks = []
    while True:
        track: list[dict] = []
        for framefaces in scenefaces:
            for face in framefaces:
                if track == []:
                    track.append(face)
                    framefaces.remove(face)
                elif face["frame"] - track[-1]["frame"] <= num_failed_det:
                    if literal_iou(face["bbox"], track[-1]["bbox"]) > 0.5:
                        track.append(face)
                        framefaces.remove(face)
                        continue
                else:
                    break
        if track == []:
            break
        if len(track) > min_track:
            framenum = [f["frame"] for f in track]
            bboxes = [f["bbox"] for f in track]
            frame_i = list(range(framenum[0], framenum[-1] + 1))
            bboxes_i = [literal_interp(framenum, [b[k] for b in bboxes], frame_i) for k in range(4)]
            widths = [bboxes_i[2][n] - bboxes_i[0][n] for n in range(len(frame_i))]
            heights = [bboxes_i[3][n] - bboxes_i[1][n] for n in range(len(frame_i))]
            if max(np.mean(widths), np.mean(heights)) > min_face_size:
                tracks.append({"frame": frame_i, "bbox": [list(row) for row in zip(*bboxes_i, strict=True)]})
    return tracks


def literal_interp(xs: list[int], ys: list[float], grid: list[int]) -> list[float]:
    """interp1d(kind='linear'): the segment whose right end is the first x >= g (at least the second)."""
    out = []
    for g in grid:
        hi = min(max(next(k for k, x in enumerate(xs) if x >= g), 1), len(xs) - 1)
        slope = (ys[hi] - ys[hi - 1]) / (xs[hi] - xs[hi - 1])
        out.append(slope * (g - xs[hi - 1]) + ys[hi - 1])
    return out


def literal_pipeline(detections: list[np.ndarray], scenes: list[tuple[int, int]], **limits: float) -> list:
    faces = [[{"frame": f, "bbox": r[:-1].tolist(), "conf": r[-1]} for r in rows] for f, rows in enumerate(detections)]
    tracks = []
    for start, end in scenes:
        if end - start >= limits["min_track"]:
            tracks.extend(literal_track_shot(faces[start:end], **limits))  # type: ignore[arg-type]  # int and float limits, joined to float
    return tracks


def literal_medfilt(values: list[float]) -> list[float]:
    padded = [0.0] * 6 + list(values) + [0.0] * 6
    return [sorted(padded[i : i + 13])[6] for i in range(len(values))]


def literal_smoothing(bboxes: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    s = [max(b[3] - b[1], b[2] - b[0]) / 2 for b in bboxes]
    y = [(b[1] + b[3]) / 2 for b in bboxes]
    x = [(b[0] + b[2]) / 2 for b in bboxes]
    return literal_medfilt(s), literal_medfilt(x), literal_medfilt(y)


def literal_crop(image: np.ndarray, bs: float, mx0: float, my0: float, cs: float = 0.4) -> np.ndarray:
    bsi = int(bs * (1 + 2 * cs))
    frame = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = my0 + bsi, mx0 + bsi
    face = frame[int(my - bs) : int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)) : int(mx + bs * (1 + cs))]
    return cv2.resize(face, (224, 224))


# ---------------------------------------------------------------- synthetic detections


def moving_face(frames: range, size: float, seed: int, x0: float = 60.0, y0: float = 40.0) -> dict[int, list[float]]:
    """One face drifting and jittering (IoU with the previous box stays well above 0.5)."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for f in frames:
        x, y = x0 + 0.3 * (f - frames[0]) + rng.normal(0, 0.7), y0 + rng.normal(0, 0.7)
        w = size + rng.normal(0, 1.5)
        boxes[f] = [x, y, x + w, y + w * 1.2, float(rng.uniform(0.9, 1.0))]
    return boxes


def detections_of(total: int, *faces: dict[int, list[float]]) -> list[np.ndarray]:
    """Per-frame (K, 5) arrays in the order the faces are given."""
    return [np.array([face[f] for face in faces if f in face], dtype=np.float64).reshape(-1, 5) for f in range(total)]


def assert_same_as_literal(found: tuple[Track, ...], expected: list) -> None:
    assert len(found) == len(expected)
    for track, reference in zip(found, expected, strict=True):
        assert track.frames.tolist() == reference["frame"]
        assert track.boxes.tolist() == reference["bbox"]
        s, x, y = literal_smoothing(reference["bbox"])
        assert (track.s.tolist(), track.cx.tolist(), track.cy.tolist()) == (s, x, y)


LIMITS = {"min_track": 100, "num_failed_det": 25, "min_face_size": 100}


# ---------------------------------------------------------------- tracking


@pytest.mark.parametrize(("gap", "tracks"), [(25, 1), (26, 2)])
def test_a_gap_of_25_frames_is_joined_and_26_splits(gap: int, tracks: int) -> None:
    first = moving_face(range(110), 120.0, seed=1)
    second = moving_face(range(109 + gap, 219 + gap), 120.0, seed=2, x0=60.0 + 0.3 * (109 + gap))
    detections = detections_of(219 + gap, first | second)
    scenes = [(0, 219 + gap)]
    found = build_tracks(detections, scenes)
    assert len(found.tracks) == tracks
    assert_same_as_literal(found.tracks, literal_pipeline(detections, scenes, **LIMITS))
    assert found.tracks[0].first_frame == 0 and found.tracks[-1].last_frame == 218 + gap
    assert sum(track.detections for track in found.tracks) == 220


def test_two_faces_give_two_tracks() -> None:
    left, right = moving_face(range(130), 110.0, seed=3), moving_face(range(5, 140), 130.0, seed=4, x0=400.0)
    detections = detections_of(140, left, right)
    found = build_tracks(detections, [(0, 140)])
    assert [(t.first_frame, t.last_frame) for t in found.tracks] == [(0, 129), (5, 139)]
    assert_same_as_literal(found.tracks, literal_pipeline(detections, [(0, 140)], **LIMITS))


def test_the_detection_after_a_taken_one_is_skipped_as_in_the_reference() -> None:
    """Every frame has the face twice, nearly identical: the reference takes the first, skips the duplicate
    (removed while iterating) and builds a second track from the duplicates."""
    face = moving_face(range(120), 120.0, seed=5)
    duplicate = {f: [v + 0.5 for v in box[:4]] + [box[4]] for f, box in face.items()}
    detections = detections_of(120, face, duplicate)
    found = build_tracks(detections, [(0, 120)])
    assert len(found.tracks) == 2
    assert found.tracks[1].boxes[0].tolist() == duplicate[0][:4]
    assert_same_as_literal(found.tracks, literal_pipeline(detections, [(0, 120)], **LIMITS))


def test_a_scene_cut_splits_the_track() -> None:
    face = moving_face(range(260), 120.0, seed=6)
    detections = detections_of(260, face)
    scenes = [(0, 120), (120, 260)]
    found = build_tracks(detections, scenes)
    assert [(t.first_frame, t.last_frame) for t in found.tracks] == [(0, 119), (120, 259)]
    assert_same_as_literal(found.tracks, literal_pipeline(detections, scenes, **LIMITS))


def test_limits_reject_small_faces_short_tracks_and_short_scenes() -> None:
    small = moving_face(range(150), 70.0, seed=7)  # mean width 70, mean height 84: both <= 100
    short = moving_face(range(200, 300), 150.0, seed=8)  # exactly 100 detections: not more than min_track
    in_short_scene = moving_face(range(300, 399), 150.0, seed=9)
    detections = detections_of(400, small | short | in_short_scene)
    scenes = [(0, 180), (180, 300), (300, 399), (399, 400)]
    found = build_tracks(detections, scenes)
    assert found.tracks == ()
    assert literal_pipeline(detections, scenes, **LIMITS) == []
    reasons = [(r.first_frame, r.last_frame, r.detections, r.reason) for r in found.rejected]
    assert reasons == [(0, 149, 150, "min_face_size"), (200, 299, 100, "min_track"), (300, 398, 99, "scene_length")]
    size = found.rejected[0].face_size
    boxes = np.array([small[f][:4] for f in range(150)])
    assert size == pytest.approx(max(np.mean(boxes[:, 2] - boxes[:, 0]), np.mean(boxes[:, 3] - boxes[:, 1])))
    assert found.longest_rejected == found.rejected[0]
    assert build_tracks(detections, scenes, min_face_size=60, min_track=99).tracks[0].detections == 150


def test_gaps_are_interpolated_linearly_like_interp1d() -> None:
    face = {f: box for f, box in moving_face(range(140), 120.0, seed=10).items() if f % 7 and not 50 < f < 70}
    detections = detections_of(140, face)
    found = build_tracks(detections, [(0, 140)])
    assert found.tracks[0].frames.tolist() == list(range(1, 140))
    assert_same_as_literal(found.tracks, literal_pipeline(detections, [(0, 140)], **LIMITS))
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    frames = sorted(face)
    for k in range(4):
        interp = scipy_interpolate.interp1d(frames, [face[f][k] for f in frames])
        assert found.tracks[0].boxes[:, k].tolist() == interp(np.arange(1, 140)).tolist()


def linear_face(frames: range, step: float = 1.5) -> dict[int, list[float]]:
    """A face moving at a constant speed: what linear interpolation reproduces exactly."""
    return {f: [60.0 + step * f, 40.0 + 0.5 * f, 180.0 + step * f, 184.0 + 0.5 * f, 0.99] for f in frames}


@pytest.mark.parametrize("every", [2, 3])
def test_detect_every_n_frames_gives_the_every_frame_track_between_its_detections(every: int) -> None:
    """Detections on frames 0, N, 2N, ... only: the track spans the first to the last detected frame, and the
    skipped frames get the interpolated boxes, which for a linear motion are the every-frame boxes."""
    face = linear_face(range(130))
    full = build_tracks(detections_of(130, face), [(0, 130)]).tracks[0]
    sampled = detections_of(130, {f: box for f, box in face.items() if f % every == 0})
    (track,) = build_tracks(sampled, [(0, 130)], detect_every=every).tracks
    last = 129 - 129 % every
    assert (track.first_frame, track.last_frame, track.detections) == (0, last, last // every + 1)
    np.testing.assert_allclose(track.boxes, full.boxes[: last + 1], rtol=0, atol=1e-9)
    assert_same_as_literal((track,), literal_pipeline(sampled, [(0, 130)], **{**LIMITS, "min_track": 10}))


@pytest.mark.parametrize(("every", "kept_from"), [(1, 101), (2, 51), (4, 26)])
def test_min_track_counts_each_detection_as_the_frames_it_samples(every: int, kept_from: int) -> None:
    """A candidate is kept when detections * N > min_track: the reference's rule for N = 1."""
    for count, kept in ((kept_from - 1, False), (kept_from, True)):
        face = linear_face(range(0, count * every, every))
        found = build_tracks(detections_of(count * every, face), [(0, 500)], detect_every=every)
        assert (len(found.tracks) == 1) is kept
        assert [r.reason for r in found.rejected] == ([] if kept else ["min_track"])


def test_min_track_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="min_track must be at least 1"):
        build_tracks([], [], min_track=0)


# ---------------------------------------------------------------- smoothing and cropping


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent")
@pytest.mark.parametrize("length", [1, 5, 13, 40])
def test_median_filter_is_zero_padded(length: int) -> None:
    values = np.random.default_rng(length).uniform(50, 150, length)
    assert median_filter(values).tolist() == literal_medfilt(values.tolist())
    signal = pytest.importorskip("scipy.signal")
    assert median_filter(values).tolist() == signal.medfilt(values, kernel_size=13).tolist()


def noise_frame(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("s", "cx", "cy"),
    [
        (40.3, 80.7, 60.2),  # inside the frame
        (55.9, 5.5, 3.25),  # near the top-left corner: the window reaches into the padding
        (60.0, 150.0, 115.9),  # bottom-right corner
        (90.0, 80.0, 60.0),  # larger than the frame
        (5.0, 80.0, -20.0),  # centre above the frame: both row bounds negative, rows come from the bottom
        (3.0, -30.0, 60.0),  # left of the frame: negative column bounds
        (0.7, 80.2, 60.6),  # tiny: pad 1
    ],
)
def test_crop_equals_the_padded_literal_crop(s: float, cx: float, cy: float) -> None:
    frame = noise_frame(120, 160, seed=int(s * 10))
    np.testing.assert_array_equal(crop_face(frame, s, cx, cy), literal_crop(frame, s, cx, cy))


def test_an_empty_crop_window_is_a_video_error() -> None:
    frame = noise_frame(120, 160, seed=1)
    padded = np.pad(frame, ((1, 1), (1, 1), (0, 0)))
    assert padded[int(-1.5 + 1 - 1.0) : int(-1.5 + 1 + 1.8), :].size == 0  # the reference's slice: empty
    with pytest.raises(VideoError, match="crop window is empty"):
        crop_face(frame, 1.0, 80.0, -1.5)


def test_track_crops_streamed_in_batches_equal_the_literal_crops() -> None:
    face = moving_face(range(3, 40), 30.0, seed=11, x0=2.0, y0=-4.0)  # partly outside the top-left corner
    found = build_tracks(detections_of(45, face), [(0, 45)], min_track=10, min_face_size=10).tracks
    track = found[0]
    frames = np.stack([noise_frame(48, 64, seed=f) for f in range(45)])
    cropper = TrackCropper(track, 48, 64)
    crops = [cropper.crop(frames[start : start + 7], start) for start in range(0, 45, 7)]
    assert [len(c) for c in crops] == [4, 7, 7, 7, 7, 5, 0]
    expected = [
        literal_crop(frames[f], s, x, y) for f, s, x, y in zip(track.frames, track.s, track.cx, track.cy, strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(crops), np.stack(expected))
    assert crops[-1].shape == (0, 224, 224, 3)


@pytest.mark.parametrize(("first", "last"), [(0, 100), (37, 211), (1234, 1500)])
def test_audio_span_is_what_ffmpeg_ss_to_cuts_at_16k(first: int, last: int) -> None:
    track = Track(np.arange(first, last + 1), np.zeros((last - first + 1, 4)), *(np.zeros(1),) * 3, detections=101)
    start, end = ("%.3f" % (first / 25), "%.3f" % ((last + 1) / 25))
    assert audio_span(track) == (round(Fraction(start) * 16000), round(Fraction(end) * 16000))
