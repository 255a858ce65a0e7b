"""Stand-in scorers and a faulty detector plug-in for the Ray executor's tests, in a module of their own so
that Ray's worker processes import them by name (``tests.ray_standins``) rather than from a test module."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_lipsync.errors import WeightsError
from pytest_lipsync.quality.pairing import ReferenceMatch
from pytest_lipsync.results import RunRecord, VideoScore
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.faces import MarkerDetector

# Frame widths at which the faulty detector crashes its process or hangs: it sees frames, not file names.
CRASH_WIDTH = 120
HANG_WIDTH = 136


class Standin:
    """Scores a video by its name's length; a video named ``crash*`` kills its process every time,
    ``flaky*`` the first time only, ``raise*`` raises. Each attempt at a video is
    recorded as a line in ``NAME.attempts`` beside it."""

    run = RunRecord("0", {"protocol": "cropped"}, (), "cpu")

    def score(self, path: str | Path, reference: ReferenceMatch | None = None) -> VideoScore:
        video = Path(path)
        with open(video.with_name(video.name + ".attempts"), "a") as attempts:
            attempts.write(f"{os.getpid()}\n")
        if video.name.startswith("crash"):
            os._exit(3)
        if video.name.startswith("flaky") and len(video.with_name(video.name + ".attempts").read_text().split()) == 1:
            os._exit(3)
        if video.name.startswith("raise"):
            raise RuntimeError("a bug in scoring")
        return VideoScore(str(path), {"lse_d": float(len(video.name))})


def standin(settings: Settings) -> Standin:
    return Standin()


def unloadable(settings: Settings) -> Standin:
    raise WeightsError("has the wrong size", path="syncnet_v2.model", hint="Fetch it again")


def dies_loading(settings: Settings) -> Standin:
    os._exit(4)


class FaultyMarkerDetector(MarkerDetector):
    """The marker detector plug-in, except on frames ``CRASH_WIDTH`` wide, where it kills its process in native
    code (a read of address 0: a segmentation fault), and ``HANG_WIDTH`` wide, where it never returns."""

    def detect(self, frames: np.ndarray, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        width = frames.shape[2]
        if width == CRASH_WIDTH:
            ctypes.string_at(0)
        if width == HANG_WIDTH:
            time.sleep(3600)
        return super().detect(frames, indices)


def faulty_marker_detector() -> FaultyMarkerDetector:
    """``detector = "tests.ray_standins:faulty_marker_detector"``."""
    return FaultyMarkerDetector()
