"""``lipsync score --jsonl OUT.jsonl``: results streamed to a JSON Lines file as videos finish, and ``--resume``.

A dataset run takes hours or days and is interrupted (a preempted node, a full disk, a Ctrl-C). A JSON
report is written once at the end, so an interruption loses everything; here each video's result is one
line, written and ``fsync``'d as soon as it is known, so an interruption loses at most the videos in
flight, and ``--resume`` scores only what the file does not hold yet. The driver never needs all the
results in memory: they go to the file as they arrive.

**Format** (one JSON object per line, UTF-8, standard JSON without NaN):

* line 1, the header: ``{"format": "pytest-lipsync-jsonl", "jsonl_version": 1, "schema_version": 1,
  "tool": ..., "settings": ..., "weights": ..., "device": ..., "shard": "i/n" (when sharded),
  "collected": [every key the run set out to score]}``: the JSON report's top-level fields without
  ``videos``. ``collected`` is what lets ``merge`` and ``gate`` refuse a file that lacks a video.
* every further line: a video entry exactly as in the JSON report's ``videos`` (``VideoScore.to_dict``),
  plus ``"sha256"``: the SHA-256 of the video file that was scored (``null`` when it could not be read),
  in the order videos finished. A key may appear more than once (a video that changed and was scored
  again): the last line wins.

**Resume** skips a video when a line holds its key and the SHA-256 of the file as it is now, whatever the
result, except ``worker_crashed`` and ``timeout``: those say more about the machine at the time than about
the video, so they are tried again. The run's settings and weights must be those of the header (mixed
numbers would be neither run's); the header is rewritten (atomically, with the kept lines) to record this
run's ``collected``. A last line cut short by the interruption is ignored with a warning; a broken line
elsewhere means the file is not what this module wrote, and is refused.

**Memory** grows with the number of videos, never with the number of lines or their size: resuming reads the
file line by line and keeps, per key, where its last line is and whether it may be kept; the kept lines are
copied into the new file as they are read again; the closing summary is a tally kept as results arrive
(:class:`Outcomes`). Only ``lipsync merge``, ``gate`` and ``--json``, which make one report of it all, read
the whole file into memory.

One writer per file: shards and array jobs write a file each and ``lipsync merge`` combines them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import run_differences
from pytest_lipsync.results import SCHEMA_VERSION, Report, RunRecord, ScoreError, VideoScore, write_bytes_atomic

FORMAT = "pytest-lipsync-jsonl"
JSONL_VERSION = 1
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# Failures of the machine rather than of the video: a resumed run tries these videos again.
RETRIED_ON_RESUME = frozenset({"worker_crashed", "timeout"})
_CHUNK = 1 << 20

if TYPE_CHECKING:
    from pytest_lipsync.scale.parquet import ParquetWriter
    from pytest_lipsync.scale.workers import Job


def is_jsonl(path: Path) -> bool:
    """Whether ``path`` names a JSON Lines results file (by its suffix, as the commands that read reports decide)."""
    return path.suffix.lower() in JSONL_SUFFIXES


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of the file's bytes, read in chunks (videos are large); ``None`` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass(frozen=True)
class Header:
    """The first line: what produced the results, and every key the run set out to score."""

    run: RunRecord
    collected: tuple[str, ...]
    shard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shard = {} if self.shard is None else {"shard": self.shard}
        return {
            "format": FORMAT,
            "jsonl_version": JSONL_VERSION,
            "schema_version": SCHEMA_VERSION,
            **self.run.to_dict(),
            **shard,
            "collected": sorted(self.collected),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Header:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"line 1 is not a {FORMAT} header")
        if data.get("jsonl_version") != JSONL_VERSION:
            raise ValueError(f"jsonl_version is {data.get('jsonl_version')!r}, this version reads {JSONL_VERSION}")
        # The report parser checks the shared fields (schema version, run record, shard, collected) strictly.
        report = Report.from_dict({**data, "videos": []})
        if report.collected is None:
            raise ValueError("the header has no 'collected' list")
        return cls(report.run, report.collected, report.shard)


@dataclass(frozen=True)
class Line:
    """One video's result and the SHA-256 of the file it was scored from."""

    score: VideoScore
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.score.to_dict(), "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Line:
        sha = data.get("sha256") if isinstance(data, Mapping) else None
        if sha is not None and not isinstance(sha, str):
            raise ValueError(f"{where}.sha256 is {sha!r}, not a hex digest or null")
        return cls(VideoScore.from_dict(data, where), sha)


@dataclass(frozen=True)
class Contents:
    """A results file read back: its header, the last line of each key (in file order), and a warning
    when its last line was cut short."""

    header: Header
    lines: Mapping[str, Line]
    torn: str | None = None

    def report(self) -> Report:
        """The file as a report: videos sorted by key (as a local run lists them), ``collected`` and shard."""
        videos = tuple(self.lines[key].score for key in sorted(self.lines))
        return Report(self.header.run, videos, self.header.shard, self.header.collected)


class Scan:
    """One pass over a results file, a line at a time: ``header`` is read on creation, :meth:`lines` yields the
    rest in file order (a key may recur: the last one wins) and sets ``torn`` when the last line was cut short.

    Raises :class:`ValueError` naming the line for anything else wrong."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self.path = path
        self.torn: str | None = None
        self._numbered = _numbered(stream)
        first = next(self._numbered, None)
        if first is None:
            raise ValueError("it is empty: no header line")
        number, raw, _ = first
        try:
            self.header = Header.from_dict(json.loads(raw.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"line {number}: {exc}") from None

    def lines(self) -> Iterator[tuple[int, bytes, Line]]:
        """(line number, raw line, parsed line) for each result line."""
        for number, raw, last in self._numbered:
            try:
                line = Line.from_dict(json.loads(raw.decode("utf-8")), f"line {number}")
            except (ValueError, UnicodeDecodeError) as exc:
                if last and not raw.endswith(b"\n"):
                    self.torn = f"{self.path}: line {number} was cut short (an interrupted write) and is ignored"
                    return
                raise ValueError(f"line {number}: {exc}") from None
            yield number, raw, line


def read_jsonl(path: Path) -> Contents:
    """Read a results file strictly, whole; a torn last line is left out (``Contents.torn`` says so).

    Raises :class:`ValueError` naming the line for anything else wrong, and :class:`OSError` when it cannot be read.
    """
    lines: dict[str, Line] = {}
    with open(path, "rb") as stream:
        scan = Scan(stream, path)
        for _, _, line in scan.lines():
            lines.pop(line.score.path, None)  # a later line for a key supersedes, and takes its place in the order
            lines[line.score.path] = line
    return Contents(scan.header, lines, scan.torn)


def _numbered(stream: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based number, raw line with its newline, whether it is the last) for each non-blank line."""
    previous: tuple[int, bytes] | None = None
    for number, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        if previous is not None:
            yield (*previous, False)
        previous = (number, raw)
    if previous is not None:
        yield (*previous, True)


class JsonlWriter:
    """Appends one line per result, each flushed and ``fsync``'d before the next video is reported done."""

    def __init__(self, path: Path, header: Header, kept: Iterable[bytes] = ()) -> None:
        """Write ``header`` and the ``kept`` raw lines of a resumed run as a new file (atomically: an
        interruption now leaves the old file; ``kept`` may be read from it meanwhile), then keep it open for
        appending."""
        first = _dumps(header.to_dict()).encode("utf-8")
        write_bytes_atomic(
            path, itertools.chain([first], (raw if raw.endswith(b"\n") else raw + b"\n" for raw in kept))
        )
        self.path = path
        self._stream: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, line: Line) -> None:
        self._stream.write(_dumps(line.to_dict()))
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def close(self) -> None:
        self._stream.close()


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, allow_nan=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class ResumePlan:
    """What a resumed run keeps of an earlier file: the header it was written with, and for each key it will
    not score again the number of the line holding its result (memory per key, not per line)."""

    path: Path | None = None
    header: Header | None = None
    kept: Mapping[str, int] = field(default_factory=dict)
    torn: str | None = None

    @classmethod
    def read(cls, path: Path, wanted: Mapping[str, Path]) -> ResumePlan:
        """Keep the last line of each ``wanted`` video (key -> file) whose file still has the SHA-256 recorded,
        unless it failed in a way worth retrying. Files are hashed only for keys the output holds."""
        latest: dict[str, tuple[int, str | None]] = {}  # key -> (line number, hash if the result may be kept)
        try:
            with open(path, "rb") as stream:
                scan = Scan(stream, path)
                for number, _, line in scan.lines():
                    if line.score.path in wanted:
                        error = line.score.error
                        keep = error is None or error.kind not in RETRIED_ON_RESUME
                        latest[line.score.path] = (number, line.sha256 if keep else None)
        except OSError as exc:
            raise ConfigError(f"cannot be read to resume ({exc.strerror})", path=path) from None
        except ValueError as exc:
            raise ConfigError(
                f"cannot be resumed, it is not a results file written by lipsync score --jsonl ({exc})",
                path=path,
                hint="Resume into the file the interrupted run wrote, or write to a new one",
            ) from None
        kept = {
            key: number for key, (number, sha) in latest.items() if sha is not None and file_sha256(wanted[key]) == sha
        }
        return cls(path, scan.header, kept, scan.torn)

    def check_run(self, run: RunRecord, path: Path) -> None:
        """Refuse to add this run's results to a file of another run: the numbers would not be comparable."""
        if self.header is None:
            return
        differences = run_differences(self.header.run, run, f"in {path}", "now")
        if differences:
            raise ConfigError(
                f"cannot be resumed with these settings or weights: {'; '.join(differences)}",
                path=path,
                hint="Resume with the settings and weights of the run that wrote it, or write to a new file",
            )

    def kept_lines(self) -> Iterator[tuple[bytes, Line]]:
        """The kept lines, raw and parsed, read again from the earlier file in its order."""
        if self.path is None or not self.kept:
            return
        numbers = set(self.kept.values())
        with open(self.path, "rb") as stream:
            for number, raw, line in Scan(stream, self.path).lines():
                if number in numbers:
                    yield raw, line


class Outcomes:
    """The closing summary's tally, kept as results arrive: per key, whether its last result is ok, and the
    error of each failed one (memory per video, never the results themselves)."""

    def __init__(self) -> None:
        self.errors: dict[str, ScoreError | None] = {}

    def add(self, score: VideoScore) -> None:
        self.errors[score.path] = score.error

    @property
    def failed(self) -> list[tuple[str, ScoreError]]:
        """The failed videos by key."""
        return sorted((key, error) for key, error in self.errors.items() if error is not None)


class StreamSink:
    """An executor's :class:`~pytest_lipsync.scale.workers.ResultSink` that streams results to a JSON Lines
    file, a Parquet file or both, and tallies them (``outcomes``) for the closing summary.

    The files are (re)written only once the run record is known (the models loaded), so a run that fails to
    set up leaves an earlier file as it was; a resumed run's kept lines go first. ``close(complete)``
    publishes the Parquet file only when the run completed: it is the whole run or nothing."""

    def __init__(
        self,
        jsonl: Path | None,
        parquet: Path | None,
        collected: Sequence[str],
        shard: str | None,
        plan: ResumePlan,
    ) -> None:
        self.jsonl, self.parquet, self.plan = jsonl, parquet, plan
        self.collected, self.shard = tuple(collected), shard
        self.outcomes = Outcomes()
        self._jsonl: JsonlWriter | None = None
        self._parquet: ParquetWriter | None = None

    def start(self, run: RunRecord) -> None:
        header = Header(run, self.collected, self.shard)
        if self.jsonl is not None:
            self.plan.check_run(run, self.jsonl)
        if self.parquet is not None:
            from pytest_lipsync.scale.parquet import ParquetWriter

            self._parquet = ParquetWriter(self.parquet, header.to_dict())
        if self.jsonl is not None:  # only a JSON Lines file is resumed: a plan without one keeps nothing
            self._jsonl = JsonlWriter(self.jsonl, header, self._kept(self.plan.kept_lines()))

    def _kept(self, lines: Iterator[tuple[bytes, Line]]) -> Iterator[bytes]:
        for raw, line in lines:
            self._record(line)
            yield raw

    def put(self, job: Job, result: VideoScore, sha256: str | None = None) -> None:
        line = Line(result, sha256 if sha256 is not None else file_sha256(job.video))
        if self._jsonl is not None:
            self._jsonl.write(line)
        self._record(line)

    def _record(self, line: Line) -> None:
        self.outcomes.add(line.score)
        if self._parquet is not None:
            self._parquet.write(line.to_dict())

    def close(self, complete: bool) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._parquet is not None:
            self._parquet.close(complete)
