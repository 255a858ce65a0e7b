"""Detector plug-ins: loading ``package.module:factory``, validating every answer, and the marker test detector."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.faces.detector import CheckedDetector, load_detector
from pytest_lipsync.synthetic.faces import MARKER_RGB, marker_boxes

PLUGINS = textwrap.dedent(
    """
    import numpy as np

    class Answers:
        def __init__(self, answer):
            self.answer = answer

        def detect(self, frames, indices):
            return [self.answer(frame, int(index)) for frame, index in zip(frames, indices)]

    def good():
        return Answers(lambda frame, index: np.array([[10, 12, 50, 60.5, 0.99]], dtype=np.float32))

    def at_the_edges():  # partly outside the 96x64 frames, by less than half of each box
        return Answers(lambda frame, index: [[-15, -20, 25, 20, 0.5], [76, 0, 111, 30, 0.4]])

    def nothing():
        return Answers(lambda frame, index: [])

    def one_short():
        class Short:
            def detect(self, frames, indices):
                return [np.zeros((0, 5))] * (len(frames) - 1)
        return Short()

    def four_columns():
        return Answers(lambda frame, index: np.array([[10, 10, 40, 40]]))

    def not_finite():
        return Answers(lambda frame, index: np.array([[10, 10, np.nan, 40, 1.0]]))

    def width_height():
        return Answers(lambda frame, index: np.array([[50, 30, 20, 20, 1.0]]))

    def outside_on_frame_11():
        return Answers(lambda frame, index: np.array([[500, 10, 540, 50, 1.0]] if index == 11 else [[0, 0, 9, 9, 1.0]]))

    def no_list():
        class Nothing:
            def detect(self, frames, indices):
                return None
        return Nothing()

    def words():
        return Answers(lambda frame, index: [["a", "b", "c", "d", "e"]])

    def raising():
        raise RuntimeError("no GPU here")

    def no_detect():
        return object()

    def one_argument():
        class OneArgument:
            def detect(self, frames):
                return []
        return OneArgument()

    not_callable = 3
    """
)


@pytest.fixture()
def plugins(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path_factory.getbasetemp() / "detector_plugins"
    if not root.exists():
        root.mkdir()
        (root / "lipsync_test_plugins.py").write_text(PLUGINS)
        (root / "lipsync_broken_plugin.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(root))
    return root


FRAMES = np.zeros((2, 64, 96, 3), dtype=np.uint8)
INDICES = np.array([10, 11])


def test_a_plugin_is_loaded_and_its_boxes_come_back_as_float64(plugins: Path) -> None:
    detector = load_detector("lipsync_test_plugins:good")
    assert isinstance(detector, CheckedDetector)
    boxes = detector.detect(FRAMES, INDICES)
    assert [b.tolist() for b in boxes] == [[[10, 12, 50, 60.5, np.float32(0.99)]]] * 2
    assert all(b.dtype == np.float64 for b in boxes)


def test_boxes_partly_outside_the_frame_and_empty_answers_are_accepted(plugins: Path) -> None:
    edges = load_detector("lipsync_test_plugins:at_the_edges").detect(FRAMES, INDICES)
    assert edges[0].shape == (2, 5)
    assert [b.shape for b in load_detector("lipsync_test_plugins:nothing").detect(FRAMES, INDICES)] == [(0, 5)] * 2


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("lipsync_test_plugins", "is not of the form 'package.module:factory'"),
        ("a_module_that_does_not_exist:make", "cannot import module 'a_module_that_does_not_exist'"),
        ("lipsync_broken_plugin:make", "No module named 'a_dependency_nobody_installed'"),
        ("lipsync_test_plugins:missing", "module 'lipsync_test_plugins' has no callable 'missing'"),
        ("lipsync_test_plugins:not_callable", "has no callable 'not_callable'"),
        ("lipsync_test_plugins:raising", "raising() raised RuntimeError: no GPU here"),
        ("lipsync_test_plugins:no_detect", "the factory's result (object) has no detect(frames, indices) method"),
        ("lipsync_test_plugins:one_argument", "detect() cannot be called as detect(frames, indices)"),
    ],
)
def test_loading_errors_name_the_plugin(plugins: Path, spec: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_detector(spec)
    assert f"detector plug-in {spec!r}" in caught.value.message
    assert words in caught.value.message
    assert caught.value.kind == "usage"
    assert caught.value.facts == {"detector": spec}


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("one_short", "returned 1 box arrays for a batch of 2 frames"),
        ("four_columns", "the boxes of frame 10 have shape (1, 4), expected (K, 5)"),
        ("not_finite", "the boxes of frame 10 contain NaN or infinity"),
        ("width_height", "box [50.0, 30.0, 20.0, 20.0, 1.0] of frame 10 has x2 <= x1 or y2 <= y1"),
        ("outside_on_frame_11", "box [500.0, 10.0, 540.0, 50.0, 1.0] of frame 11 lies mostly outside the 96x64 frame"),
        ("no_list", "detect() returned a NoneType, not a list of (K, 5) box arrays"),
        ("words", "the boxes of frame 10 are not numbers"),
    ],
)
def test_wrong_answers_name_the_plugin_and_the_frame(plugins: Path, factory: str, words: str) -> None:
    spec = f"lipsync_test_plugins:{factory}"
    detector = load_detector(spec)
    with pytest.raises(ConfigError) as caught:
        detector.detect(FRAMES, INDICES)
    assert f"detector plug-in {spec!r}" in caught.value.message
    assert words in caught.value.message


# ---------------------------------------------------------------- the marker test detector


def drawn_faces(height: int, width: int) -> tuple[np.ndarray, list[list[float]]]:
    """A grey textured frame with a filled magenta ellipse and a magenta ring, and their exact boxes."""
    rng = np.random.default_rng(0)
    frame = np.repeat(rng.integers(60, 160, (height, width, 1), dtype=np.uint8), 3, axis=2)
    cv2.ellipse(frame, (70, 60), (30, 40), 0, 0, 360, MARKER_RGB, -1)
    cv2.ellipse(frame, (200, 90), (45, 55), 0, 0, 360, MARKER_RGB, 4)
    boxes = []
    for centre_x in (70, 200):
        mask = np.zeros((height, width), np.uint8)
        mask[(frame == MARKER_RGB).all(axis=2)] = 1
        mask[:, : centre_x - 60] = mask[:, centre_x + 60 :] = 0
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1, 1.0])
    return frame, boxes


def test_marker_detector_finds_the_bounding_box_of_each_blob() -> None:
    frame, expected = drawn_faces(160, 280)
    detector = load_detector("pytest_lipsync.synthetic.faces:marker_detector")
    found = detector.detect(frame[None], np.array([0]))
    assert found[0].tolist() == expected
    noisy = frame.copy()
    noisy[5:8, 5:8] = MARKER_RGB  # 9 pixels: below MIN_BLOB_PIXELS
    assert marker_boxes(noisy).tolist() == expected


def test_marker_detector_survives_jpeg_and_chroma_subsampling() -> None:
    frame, expected = drawn_faces(160, 280)
    _, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])
    np.testing.assert_allclose(marker_boxes(cv2.imdecode(encoded, cv2.IMREAD_COLOR)), expected, atol=2)  # type: ignore[arg-type]  # imdecode gives None only for bytes that are no image
