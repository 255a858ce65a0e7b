"""Result objects and the one JSON schema shared by ``lipsync score --json``, pytest reports and baselines.

Results are plain frozen data so that they can be cached, merged across processes and compared with a
baseline without re-running anything. JSON stays standard (no NaN or Infinity): non-finite values are
written as ``null``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
TOOL_NAME = "pytest-lipsync"

# Metric name -> True when higher is better. Offsets are informational and have no direction.
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {"lse_d": False, "lse_c": True, "psnr": True, "ssim": True}


@dataclass(frozen=True)
class BoxStats:
    """Where a pipeline track's face was: detector boxes it was built from and its mean box size in pixels.

    Means are over the interpolated boxes of every frame of the track (the boxes the crop is made from).
    """

    detections: int
    mean_width: float
    mean_height: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "detections": self.detections,
            "mean_width": _rounded(self.mean_width),
            "mean_height": _rounded(self.mean_height),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BoxStats:
        return cls(int(data["detections"]), _number(data["mean_width"]), _number(data["mean_height"]))


@dataclass(frozen=True)
class TrackScore:
    """One face track (the whole clip in the cropped protocol), scored as in PROTOCOL section 6."""

    start_frame: int
    end_frame: int
    windows: int
    lse_d: float
    lse_c: float
    offset: int
    mean_dist: tuple[float, ...] = ()
    frame_confidence: tuple[float, ...] = ()
    boxes: BoxStats | None = None  # pipeline protocol only

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "windows": self.windows,
            "lse_d": _finite(self.lse_d),
            "lse_c": _finite(self.lse_c),
            "offset": self.offset,
            "mean_dist": [_rounded(v) for v in self.mean_dist],
            "frame_confidence": [_rounded(v) for v in self.frame_confidence],
            "boxes": None if self.boxes is None else self.boxes.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackScore:
        return cls(
            start_frame=int(data["start_frame"]),
            end_frame=int(data["end_frame"]),
            windows=int(data["windows"]),
            lse_d=_number(data["lse_d"]),
            lse_c=_number(data["lse_c"]),
            offset=int(data["offset"]),
            mean_dist=tuple(_number(v) for v in data.get("mean_dist", ())),
            frame_confidence=tuple(_number(v) for v in data.get("frame_confidence", ())),
            boxes=None if data.get("boxes") is None else BoxStats.from_dict(data["boxes"]),
        )


@dataclass(frozen=True)
class ScoreError:
    """Why a video could not be scored: the error kind (stable, machine-readable) and the message."""

    kind: str
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "facts": dict(self.facts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreError:
        return cls(kind=str(data["kind"]), message=str(data["message"]), facts=dict(data.get("facts") or {}))


@dataclass(frozen=True)
class VideoScore:
    """Everything known about one video: its metrics (mean over tracks), its tracks, or its error.

    ``quality``: PSNR/SSIM against ground truth when it was requested, as plain JSON data (per-frame series,
    worst frame, alignment, variant, its own error); schema and failure rules in
    :mod:`pytest_lipsync.quality.ground_truth`.
    """

    path: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    tracks: tuple[TrackScore, ...] = ()
    frames: int = 0
    audio_frames: int = 0  # the sound's length in 25 fps frames: the shorter of it and ``frames`` bounds the windows
    duration: float = 0.0
    timings: Mapping[str, float] = field(default_factory=dict)
    error: ScoreError | None = None
    quality: Mapping[str, Any] | None = None
    # Source frames the decoder lost or concealed, under ``max_corrupt_fraction`` (more fails the video):
    # the score is of the frames that decoded. Older results, written before it was counted, read as 0.
    damaged_frames: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "metrics": {name: _finite(value) for name, value in self.metrics.items()},
            "frames": self.frames,
            "audio_frames": self.audio_frames,
            "duration": round(self.duration, 6),
            "tracks": [track.to_dict() for track in self.tracks],
            "timings": {stage: round(seconds, 6) for stage, seconds in self.timings.items()},
            "error": None if self.error is None else self.error.to_dict(),
            "quality": None if self.quality is None else dict(self.quality),
            "damaged_frames": self.damaged_frames,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoScore:
        error = data.get("error")
        return cls(
            path=str(data["path"]),
            metrics={name: _number(value) for name, value in (data.get("metrics") or {}).items()},
            tracks=tuple(TrackScore.from_dict(t) for t in data.get("tracks", ())),
            frames=int(data.get("frames", 0)),
            audio_frames=int(data.get("audio_frames", 0)),
            duration=float(data.get("duration", 0.0)),
            timings=dict(data.get("timings") or {}),
            error=None if error is None else ScoreError.from_dict(error),
            quality=data.get("quality"),
            damaged_frames=int(data.get("damaged_frames", 0)),
        )


@dataclass(frozen=True)
class WeightsRecord:
    """Which weights produced a result: a baseline made with other weights must not compare silently."""

    name: str
    path: str
    sha256: str
    custom: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "custom": self.custom}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsRecord:
        return cls(str(data["name"]), str(data["path"]), str(data["sha256"]), bool(data["custom"]))


@dataclass(frozen=True)
class RunRecord:
    """What produced a set of results: tool version, settings that move numbers, weights, device."""

    tool_version: str
    settings: Mapping[str, Any]
    weights: tuple[WeightsRecord, ...]
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": {"name": TOOL_NAME, "version": self.tool_version},
            "settings": dict(self.settings),
            "weights": [w.to_dict() for w in self.weights],
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(
            tool_version=str(data["tool"]["version"]),
            settings=dict(data["settings"]),
            weights=tuple(WeightsRecord.from_dict(w) for w in data["weights"]),
            device=str(data["device"]),
        )


@dataclass(frozen=True)
class Report:
    """A results document: the run record and one entry per video; ``shard`` ("i/n") when a CI job
    scored a share of the videos (``lipsync merge`` checks that the shards add up)."""

    run: RunRecord
    videos: tuple[VideoScore, ...]
    shard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shard = {} if self.shard is None else {"shard": self.shard}
        return {"schema_version": SCHEMA_VERSION, **self.run.to_dict(), **shard, "videos": [v.to_dict() for v in self.videos]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        if not isinstance(data, Mapping):  # a hand-edited file: any JSON parses, few documents are reports
            raise ValueError(f"a report is a JSON object, not a {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema_version is {version!r}, this version of {TOOL_NAME} reads {SCHEMA_VERSION}")
        videos = tuple(VideoScore.from_dict(v) for v in data["videos"])
        return cls(run=RunRecord.from_dict(data), videos=videos, shard=data.get("shard"))


def mean_over_tracks(tracks: Sequence[TrackScore]) -> dict[str, float]:
    """A video's metrics (PROTOCOL 7): LSE means over tracks; the offset is the longest track's."""
    longest = max(tracks, key=lambda t: t.windows)
    return {
        "lse_d": sum(t.lse_d for t in tracks) / len(tracks),
        "lse_c": sum(t.lse_c for t in tracks) / len(tracks),
        "offset": float(longest.offset),
    }


def write_json_atomic(path: Path, document: Mapping[str, Any], *, sort_keys: bool = False) -> None:
    """Write ``document`` as standard JSON (no NaN or Infinity), atomically; ``sort_keys`` for files that are
    committed and diffed."""
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False, sort_keys=sort_keys) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = temporary_beside(path, ".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# A temporary whose writer's pid cannot be checked (another machine sharing the folder) is left this long.
STALE_TEMPORARY_SECONDS = 3600


def temporary_beside(path: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file (open descriptor, path) in ``path``'s folder to be published over ``path``, named
    ``.NAME.<pid>.<random><suffix>``; first, the temporaries a killed writer of ``path`` left there are removed.

    A temporary is stale when the process named in it has exited, or when it is older than
    :data:`STALE_TEMPORARY_SECONDS` (a writer elsewhere, or one without its pid in the name): writing takes
    seconds, so neither can belong to a write still in progress.
    """
    prefix = f".{path.name}."
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        writer = candidate.name[len(prefix) : -len(suffix)].split(".")
        try:
            old = time.time() - candidate.stat().st_mtime > STALE_TEMPORARY_SECONDS
            if old or (len(writer) == 2 and writer[0].isdigit() and _exited(int(writer[0]))):
                candidate.unlink()
        except OSError:  # gone already, or not ours to remove: the new write does not need it gone
            continue
    handle, temporary = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=suffix, dir=path.parent)
    return handle, Path(temporary)


def _exited(pid: int) -> bool:
    """Whether process ``pid`` is known to have exited (only POSIX can tell without side effects)."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def publish(temporary: Path, path: Path) -> None:
    """Rename a finished temporary file over ``path`` with the permissions a plain ``open()`` would give.

    ``mkstemp`` creates files readable by their owner only; a report, baseline or annotated video is meant to
    be shared (a CI artifact, a web server, a teammate's checkout), so it gets ``0o666`` less the umask.
    """
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, path)


def _umask() -> int:
    """The process's umask. Linux shows it in /proc without touching it; elsewhere reading it means setting it
    (set straight back), and for that instant other threads' new files would get the wrong mask."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _rounded(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
