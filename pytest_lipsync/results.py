"""Result objects and the one JSON schema shared by ``lipsync score --json``, pytest reports and baselines.

Results are plain frozen data so that they can be cached, merged across processes and compared with a
baseline without re-running anything. JSON stays standard (no NaN or Infinity): non-finite values are
written as ``null``.

Reading is strict. Reports travel between CI jobs and get edited by hand, and every command that reads one
(``lipsync report``, ``merge``, ``gate``) would otherwise meet a wrong type deep inside a plot or a verdict
and crash there, or worse, judge a number it misread. So ``from_dict`` checks each field it reads and a
:class:`ValueError` names the first wrong one by its place in the document (``videos[2].metrics.lse_d``).
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_lipsync.metrics import METRICS

if TYPE_CHECKING:
    from pytest_lipsync.errors import LipsyncError

SCHEMA_VERSION = 1
TOOL_NAME = "pytest-lipsync"


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
    def from_dict(cls, data: Any, where: str = "boxes") -> BoxStats:
        data = _object(data, where)
        return cls(
            _required(data, "detections", where, _count),
            _required(data, "mean_width", where, _number),
            _required(data, "mean_height", where, _number),
        )


@dataclass(frozen=True)
class TrackScore:
    """One face track (the whole clip in the cropped protocol), scored as in docs/protocol.md."""

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
    def from_dict(cls, data: Any, where: str = "track") -> TrackScore:
        data = _object(data, where)
        return cls(
            start_frame=_required(data, "start_frame", where, _count),
            end_frame=_required(data, "end_frame", where, _count),
            windows=_required(data, "windows", where, _count),
            lse_d=_required(data, "lse_d", where, _number),
            lse_c=_required(data, "lse_c", where, _number),
            offset=_required(data, "offset", where, _whole),
            mean_dist=_optional(data, "mean_dist", where, _list_of(_number), ()),
            frame_confidence=_optional(data, "frame_confidence", where, _list_of(_number), ()),
            boxes=_optional(data, "boxes", where, _object_or_null(BoxStats.from_dict), None),
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
    def from_error(cls, error: LipsyncError) -> ScoreError:
        """The record of a raised error: what a result keeps of it (kind, message, facts; not the traceback)."""
        return cls(error.kind, error.message, error.facts)

    @classmethod
    def from_dict(cls, data: Any, where: str = "error") -> ScoreError:
        data = _object(data, where)
        return cls(
            kind=_required(data, "kind", where, _text),
            message=_required(data, "message", where, _text),
            facts=_optional(data, "facts", where, _empty_if_null(_object), {}),
        )


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
    def from_dict(cls, data: Any, where: str = "video") -> VideoScore:
        data = _object(data, where)
        return cls(
            path=_required(data, "path", where, _key),
            metrics=_optional(data, "metrics", where, _empty_if_null(_values_of(_number)), {}),
            tracks=_optional(data, "tracks", where, _list_of(TrackScore.from_dict), ()),
            frames=_optional(data, "frames", where, _count, 0),
            audio_frames=_optional(data, "audio_frames", where, _count, 0),
            duration=_optional(data, "duration", where, _finite_number, 0.0),
            timings=_optional(data, "timings", where, _empty_if_null(_values_of(_finite_number)), {}),
            error=_optional(data, "error", where, _object_or_null(ScoreError.from_dict), None),
            quality=_optional(data, "quality", where, _object_or_null(_QUALITY), None),
            damaged_frames=_optional(data, "damaged_frames", where, _count, 0),
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
    def from_dict(cls, data: Any, where: str = "weights") -> WeightsRecord:
        data = _object(data, where)
        return cls(
            _required(data, "name", where, _text),
            _required(data, "path", where, _text),
            _required(data, "sha256", where, _text),
            _required(data, "custom", where, _flag),
        )


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
    def from_dict(cls, data: Any, where: str = "") -> RunRecord:
        data = _object(data, where)
        tool = _required(data, "tool", where, _object)
        return cls(
            tool_version=_required(tool, "version", _at(where, "tool"), _text),
            settings=_required(data, "settings", where, _object),
            weights=_required(data, "weights", where, _list_of(WeightsRecord.from_dict)),
            device=_required(data, "device", where, _text),
        )


@dataclass(frozen=True)
class Report:
    """A results document: the run record and one entry per video; ``shard`` ("i/n") when a CI job
    scored a share of the videos (``lipsync merge`` checks that the shards add up).

    ``collected``: the key of every video the run set out to gate, all shards' together, before ``-k`` or
    ``-m`` chose among them. It is what makes a report provably complete: a video that a crashed process,
    an early stop or a lost shard left out is still listed there, so ``merge`` and ``gate`` can refuse the
    report instead of passing on what it no longer mentions. ``None`` where the document does not say
    (a baseline, a file from an older version).
    """

    run: RunRecord
    videos: tuple[VideoScore, ...]
    shard: str | None = None
    collected: tuple[str, ...] | None = None
    # Metrics of the whole dataset (``{"fid": {...}}``, see ``scoring.dataset``): never of a shard nor a merge.
    dataset: Mapping[str, Any] | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        """Collected videos that have no entry."""
        listed = {video.path for video in self.videos}
        return tuple(key for key in self.collected or () if key not in listed)

    def to_dict(self) -> dict[str, Any]:
        shard = {} if self.shard is None else {"shard": self.shard}
        collected = {} if self.collected is None else {"collected": sorted(self.collected)}
        videos = [v.to_dict() for v in self.videos]
        dataset = {} if self.dataset is None else {"dataset": dict(self.dataset)}
        return {
            "schema_version": SCHEMA_VERSION,
            **self.run.to_dict(),
            **shard,
            **collected,
            **dataset,
            "videos": videos,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        if not isinstance(data, Mapping):  # a hand-edited file: any JSON parses, few documents are reports
            raise ValueError(f"a report is a JSON object, not a {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema_version is {version!r}, this version of {TOOL_NAME} reads {SCHEMA_VERSION}")
        videos = _required(data, "videos", "", _list_of(VideoScore.from_dict))
        _once("videos", [video.path for video in videos])
        collected = _optional(data, "collected", "", _list_of(_key), None)
        if collected is not None:
            _once("collected", collected)
        shard = _optional(data, "shard", "", _text_or_null, None)
        dataset = _optional(data, "dataset", "", _object_or_null(_DATASET), None)
        return cls(RunRecord.from_dict(data), videos, shard, collected, dataset)


@dataclass(frozen=True)
class Tally:
    """How the session's scores were obtained: the terminal summary reports it (and tests check it).
    ``report``: the file they were read from, when a report was gated (``lipsync gate``)."""

    scored: int = 0
    replayed: int = 0
    report: str | None = None


def mean_over_tracks(tracks: Sequence[TrackScore]) -> dict[str, float]:
    """A video's metrics (docs/protocol.md): LSE means over tracks; the offset is the longest track's."""
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
    _write_atomic(path, [text], "w")


def write_bytes_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` (consumed as they are written: a large file need not be in memory) so that readers see
    the old file or the new one, never half of one."""
    _write_atomic(path, chunks, "wb")


def _write_atomic(path: Path, chunks: Iterable[Any], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = temporary_beside(path, ".tmp")
    try:
        with os.fdopen(handle, mode, encoding="utf-8" if mode == "w" else None) as stream:
            for chunk in chunks:
                stream.write(chunk)
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


# Reading: each parser takes a value and its place in the document, and returns it typed or raises
# ValueError naming the place. Whole numbers stay within what a double holds exactly, which every
# consumer (plots, slicing, JSON readers in other languages) can take.
_T = TypeVar("_T")
Parser = Callable[[Any, str], _T]
_LARGEST_WHOLE = 2**53
_SHOWN = 60  # characters of a wrong value quoted in a message


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _required(data: Mapping[str, Any], key: str, where: str, parse: Parser[_T]) -> _T:
    if key not in data:
        raise ValueError(f"{_at(where, key)} is missing")
    return parse(data[key], _at(where, key))


def _optional(data: Mapping[str, Any], key: str, where: str, parse: Parser[_T], default: _T) -> _T:
    return parse(data[key], _at(where, key)) if key in data else default


def _wrong(where: str, expected: str, value: Any) -> ValueError:
    shown = repr(value)
    if len(shown) > _SHOWN:
        shown = shown[: _SHOWN - 3] + "..."
    return ValueError(f"{where} must be {expected}, not {shown}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _wrong(where, "an object", value)
    return dict(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _wrong(where, "a string", value)
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(where, "true or false", value)
    return value


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _LARGEST_WHOLE:
        raise _wrong(where, "a whole number", value)
    return value


def _count(value: Any, where: str) -> int:
    if _whole(value, where) < 0:
        raise _wrong(where, "a whole number from 0", value)
    return value


def _finite_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _wrong(where, "a finite number", value)
    return float(value)


def _number(value: Any, where: str) -> float:
    """A metric: finite, or null for a value that was not finite when written (NaN reads back as NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _wrong(where, "a finite number or null", value)
    return float(value)


def _key(value: Any, where: str) -> str:
    """A video key (the design's one name per video): a path as pathlib writes it, so never ``./x`` or ``x//y``,
    since a key that differs only in spelling would miss its baseline entry, its overrides and its shard."""
    normal = PurePosixPath(_text(value, where)).as_posix()
    if value != normal or value in ("", "."):
        advice = f" (write {normal!r})" if value and normal != "." else ""
        raise ValueError(f"{where} {value!r} is not a video key{advice}")
    return value


def _text_or_null(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _wrong(where, "a string or null", value)
    return value


def _checked(fields: Mapping[str, Parser[Any]]) -> Parser[dict[str, Any]]:
    """An object kept as plain JSON, whose listed ``fields`` must parse where they are present."""

    def parse_fields(value: Any, where: str) -> dict[str, Any]:
        data = _object(value, where)
        for key, parse in fields.items():
            if key in data:
                parse(data[key], _at(where, key))
        return data

    return parse_fields


def _once(where: str, keys: Sequence[str]) -> None:
    """Each video once: of two entries for one video, one would be judged and the other ignored."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in first:
            field_name = f"{where}[{index}].path" if where == "videos" else f"{where}[{index}]"
            raise ValueError(f"{field_name} {key!r} is listed twice (also {where}[{first[key]}])")
        first[key] = index


def _object_or_null(parse: Parser[_T]) -> Parser[_T | None]:
    def parse_or_null(value: Any, where: str) -> _T | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _wrong(where, "an object or null", value)
        return parse(value, where)

    return parse_or_null


def _empty_if_null(parse: Parser[dict[str, _T]]) -> Parser[dict[str, _T]]:
    """An object, where null (as a writer may put for an empty one) reads as empty."""
    nullable = _object_or_null(parse)

    def parse_or_empty(value: Any, where: str) -> dict[str, _T]:
        return nullable(value, where) or {}

    return parse_or_empty


def _list_of(parse: Parser[_T]) -> Parser[tuple[_T, ...]]:
    def parse_list(value: Any, where: str) -> tuple[_T, ...]:
        if not isinstance(value, list):
            raise _wrong(where, "a list", value)
        return tuple(parse(item, _at(where, index)) for index, item in enumerate(value))

    return parse_list


def _values_of(parse: Parser[_T]) -> Parser[dict[str, _T]]:
    def parse_values(value: Any, where: str) -> dict[str, _T]:
        return {name: parse(item, _at(where, name)) for name, item in _object(value, where).items()}

    return parse_values


_SERIES = _checked(
    {
        "mean": _number,
        "worst": _object_or_null(_checked({"frame": _count, "track": _count, "value": _number})),
        "per_frame": _list_of(_number),
    }
)
# ``quality`` (schema: :mod:`pytest_lipsync.quality.ground_truth`) stays plain JSON; the fields that gates and
# reports read are checked.
_QUALITY = _checked(
    {
        "reference": _text_or_null,
        "match": _text_or_null,
        "error": _object_or_null(ScoreError.from_dict),
        "psnr": _object_or_null(_SERIES),
        "ssim": _object_or_null(_SERIES),
        "frames": _count,
        "generated_frames": _count,
        "reference_frames": _count,
        "length_mismatch": _whole,
        "identical_frames": _count,
        "crops": _count,
        "psnr_cap_db": _finite_number,
        "resized_reference": _flag,
        "ssim_window": _text,
        "color": _text,
        "region": _text,
        "tracks": _list_of(_checked({"first_frame": _count, "last_frame": _count})),
        **{metric.name: _object_or_null(_SERIES) for metric in METRICS if metric.regional},
    }
)
# ``dataset`` (schema: ``pytest_lipsync.scoring.dataset``): the fields a gate reads are checked.
_DATASET = _checked(
    {
        "fid": _object_or_null(
            _checked({"value": _number, "videos": _count, "generated_frames": _count, "reference_frames": _count})
        )
    }
)
