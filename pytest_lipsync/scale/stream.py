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

One writer per file: shards and array jobs write a file each and ``lipsync merge`` combines them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import run_differences
from pytest_lipsync.results import SCHEMA_VERSION, Report, RunRecord, VideoScore, write_text_atomic

FORMAT = "pytest-lipsync-jsonl"
JSONL_VERSION = 1
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# Failures of the machine rather than of the video: a resumed run tries these videos again.
RETRIED_ON_RESUME = frozenset({"worker_crashed", "timeout"})
_CHUNK = 1 << 20

if TYPE_CHECKING:
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


def read_jsonl(path: Path) -> Contents:
    """Read a results file strictly; a torn last line is left out (``Contents.torn`` says so).

    Raises :class:`ValueError` naming the line for anything else wrong, and :class:`OSError` when it cannot be read.
    """
    header: Header | None = None
    lines: dict[str, Line] = {}
    torn = None
    with open(path, "rb") as stream:
        numbered = list(_numbered(stream))
    for number, raw, last in numbered:
        try:
            data = json.loads(raw.decode("utf-8"))
            if header is None:
                header = Header.from_dict(data)
                continue
            line = Line.from_dict(data, f"line {number}")
        except (ValueError, UnicodeDecodeError) as exc:
            if last and not raw.endswith(b"\n") and header is not None:
                torn = f"{path}: line {number} was cut short (an interrupted write) and is ignored"
                break
            raise ValueError(f"line {number}: {exc}") from None
        lines.pop(line.score.path, None)  # a later line for a key supersedes, and takes its place in the order
        lines[line.score.path] = line
    if header is None:
        raise ValueError("it is empty: no header line")
    return Contents(header, lines, torn)


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

    def __init__(self, path: Path, header: Header, kept: Sequence[Line] = ()) -> None:
        """Write ``header`` and the ``kept`` lines of a resumed run as a new file (atomically: an interruption
        now leaves the old file), then keep it open for appending."""
        documents = (header.to_dict(), *(line.to_dict() for line in kept))
        write_text_atomic(path, "".join(_dumps(document) for document in documents))
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
    """What a resumed run keeps of an earlier file: the lines it will not score again."""

    previous: Contents | None = None
    kept: Mapping[str, Line] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, wanted: Mapping[str, Path]) -> ResumePlan:
        """Keep the lines of ``wanted`` videos (key -> file) whose file still has the SHA-256 recorded, unless
        they failed in a way worth retrying. Files are hashed only for keys the output holds."""
        try:
            previous = read_jsonl(path)
        except OSError as exc:
            raise ConfigError(f"cannot be read to resume ({exc.strerror})", path=path) from None
        except ValueError as exc:
            raise ConfigError(
                f"cannot be resumed, it is not a results file written by lipsync score --jsonl ({exc})",
                path=path,
                hint="Resume into the file the interrupted run wrote, or write to a new one",
            ) from None
        kept = {
            key: line
            for key, line in previous.lines.items()
            if key in wanted
            and (line.score.error is None or line.score.error.kind not in RETRIED_ON_RESUME)
            and line.sha256 is not None
            and file_sha256(wanted[key]) == line.sha256
        }
        return cls(previous, kept)

    def check_run(self, run: RunRecord, path: Path) -> None:
        """Refuse to add this run's results to a file of another run: the numbers would not be comparable."""
        if self.previous is None:
            return
        differences = run_differences(self.previous.header.run, run, f"in {path}", "now")
        if differences:
            raise ConfigError(
                f"cannot be resumed with these settings or weights: {'; '.join(differences)}",
                path=path,
                hint="Resume with the settings and weights of the run that wrote it, or write to a new file",
            )


class StreamSink:
    """An executor's :class:`~pytest_lipsync.scale.workers.ResultSink` that appends to a results file.

    The file is (re)written only once the run record is known (the models loaded), so a run that fails to
    set up leaves an earlier file as it was. ``failed``: keys of this run's results that have an error."""

    def __init__(self, path: Path, collected: Sequence[str], shard: str | None, plan: ResumePlan) -> None:
        self.path, self.collected, self.shard, self.plan = path, tuple(collected), shard, plan
        self.written = 0
        self._writer: JsonlWriter | None = None

    def start(self, run: RunRecord) -> None:
        self.plan.check_run(run, self.path)
        self._writer = JsonlWriter(self.path, Header(run, self.collected, self.shard), tuple(self.plan.kept.values()))

    def put(self, job: Job, result: VideoScore, sha256: str | None = None) -> None:
        assert self._writer is not None  # executors start the sink before the first result
        self._writer.write(Line(result, sha256 if sha256 is not None else file_sha256(job.video)))
        self.written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
