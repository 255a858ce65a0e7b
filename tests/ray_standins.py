"""Stand-in scorers for the Ray executor's tests, in a module of their own so that Ray's worker processes
import them by name (``tests.ray_standins``) rather than from a test module."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_lipsync.errors import WeightsError
from pytest_lipsync.quality.pairing import ReferenceMatch
from pytest_lipsync.results import RunRecord, VideoScore
from pytest_lipsync.settings import Settings


class Standin:
    """Scores a video by its name's length; a video named ``crash*`` kills its process every time,
    ``flaky*`` the first time only, ``hang*`` never returns, ``raise*`` raises. Each attempt at a video is
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
        if video.name.startswith("hang"):
            time.sleep(3600)
        if video.name.startswith("raise"):
            raise RuntimeError("a bug in scoring")
        return VideoScore(str(path), {"lse_d": float(len(video.name))})


def standin(settings: Settings) -> Standin:
    return Standin()


def unloadable(settings: Settings) -> Standin:
    raise WeightsError("has the wrong size", path="syncnet_v2.model", hint="Fetch it again")


def dies_loading(settings: Settings) -> Standin:
    os._exit(4)
