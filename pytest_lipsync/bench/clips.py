"""The clips a benchmark scores: generated talking faces of a given size, length and face count, or real ones.

Generated clips ring every face in the marker colour, so that a run with stand-in weights can still find
real tracks (see ``models.CountingDetector``, ``markers``); with the released weights S3FD finds the drawn faces or
not, and either way its full cost is paid on every frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_lipsync.errors import ConfigError

RESOLUTIONS: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080)}
MIN_SIDE = 128  # S3FD's smallest input that survives its six downsamplings at facedet_scale 0.25
_SIZE = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class BenchClip:
    """One clip to score; ``generated`` clips carry the faces drawn into them (given clips: ``None``)."""

    path: Path
    name: str
    width: int
    height: int
    seconds: float
    faces: int | None
    generated: bool

    @property
    def frames(self) -> int:
        """25 fps frames: what every stage counts in (expected; the runs report the decoded count)."""
        return round(self.seconds * 25)


def parse_resolution(text: str) -> tuple[int, int]:
    """``720p``, ``1080p`` or ``WIDTHxHEIGHT`` (even sides, at least 128: H.264 and S3FD need them)."""
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(f"resolution {text!r} is not 720p, 1080p or WIDTHxHEIGHT", hint="Write e.g. 1280x720")
    width, height = int(match[1]), int(match[2])
    if min(width, height) < MIN_SIDE or width % 2 or height % 2:
        raise ConfigError(
            f"resolution {text!r}: sides must be even and at least {MIN_SIDE} pixels", hint="Write e.g. 256x144"
        )
    return width, height


def generated_clip(directory: Path, resolution: str, seconds: float, faces: int) -> BenchClip:
    """The clip for these parameters, written once into ``directory`` and reused while it is there."""
    from pytest_lipsync.synthetic.clips import ClipSpec, write_clip

    width, height = parse_resolution(resolution)
    if faces < 1 or seconds <= 0:
        raise ConfigError(f"generated clip: {faces} faces, {seconds:g} s", hint="Give at least 1 face and a length > 0")
    name = f"{resolution}_{seconds:g}s_{faces}face{'s' if faces > 1 else ''}"
    path = directory / f"{name}.mp4"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part.mp4")
        write_clip(partial, ClipSpec(seconds=seconds, width=width, height=height, faces=faces, marker=True, seed=faces))
        partial.replace(path)
    return BenchClip(path, name, width, height, seconds, faces, generated=True)


def given_clips(directory: Path) -> list[BenchClip]:
    """Every video under ``directory``, scored as it is; their length and size come from the container."""
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.media.discover import video_files

    if not directory.is_dir():
        raise ConfigError("--clips is not a directory", path=directory, hint="Give a directory of video clips")
    videos = video_files(directory)
    if not videos:
        raise ConfigError("--clips holds no video files", path=directory, hint="Give a directory of video clips")
    clips = []
    for video in videos:
        info = open_video(video).info
        clips.append(BenchClip(video, video.stem, info.width, info.height, info.duration or 0.0, None, generated=False))
    return clips
