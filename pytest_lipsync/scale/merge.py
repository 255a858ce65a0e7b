"""``lipsync merge``: the shard reports of a CI matrix, combined into one report to gate.

A merged report is only meaningful when its parts are comparable and complete: every part made with the
same scoring settings and the same weights, no video scored twice, for sharded parts every shard of one
split present once, and every video that the parts' runs collected holding a result. Anything else is
refused with the files named and what differs, because a gate passing on two thirds of the videos is worse
than no gate. The same completeness rules decide what ``lipsync gate`` accepts (:func:`check_gateable`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import run_differences
from pytest_lipsync.results import Report
from pytest_lipsync.scale.sharding import Shard

_SAME_RUN = "Score every shard with the same settings and weights (one image, one pyproject.toml)"
_LISTED = 10  # missing videos named in a message; the rest are counted


@dataclass(frozen=True)
class NamedReport:
    """A report and the file it came from, for messages."""

    path: Path
    report: Report


def load_report(path: Path) -> NamedReport:
    """Read a report written by ``--lipsync-json`` or ``lipsync score --json``, or the JSON Lines results of
    ``lipsync score --jsonl`` (``.jsonl``: read as the report it stands for, a torn last line left out with a
    warning on stderr); a bad file, or one of another schema version, is a usage error naming it and the
    first wrong field.

    Only a regular file is opened: opening a FIFO waits for a writer, and a CI step must fail, not hang."""
    from pytest_lipsync.scale.stream import is_jsonl, read_jsonl

    hint = "Pass a report written by --lipsync-json or lipsync score --json"
    try:
        if path.exists() and not path.is_file():
            raise ConfigError("is not a regular file", path=path, hint=hint)
        if is_jsonl(path):
            contents = read_jsonl(path)
            if contents.torn is not None:
                print(f"lipsync: warning: {contents.torn}", file=sys.stderr)
            report = contents.report()
        else:
            report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if report.shard is not None:
            _parse_shard(report.shard)
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", path=path, hint=hint) from None
    except ValueError as exc:  # JSON syntax, UTF-8 and schema errors
        raise ConfigError(
            f"is not a pytest-lipsync report ({exc})",
            path=path,
            hint="Pass files written by --lipsync-json, lipsync score --json or --jsonl, by this pytest-lipsync",
        ) from None
    return NamedReport(path, report)


def _parse_shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ConfigError:
        raise ValueError(f'shard must be "i/n" with 1 <= i <= n, not {text!r}') from None


def merge_reports(parts: Sequence[NamedReport]) -> Report:
    """One report holding every part's videos (sorted by key), refusing incomparable or incomplete parts."""
    first = parts[0]
    for part in parts[1:]:
        _check_same_run(first, part)
    for part in parts:
        _check_records_collected(part)
    _check_shards(parts)
    owners: dict[str, Path] = {}
    for part in parts:
        for video in part.report.videos:
            if video.path in owners:
                raise ConfigError(
                    f"{video.path} is in both {owners[video.path]} and {part.path}",
                    hint="Each video must be scored once: give every job the same videos and its own "
                    "--lipsync-shard i/n",
                )
            owners[video.path] = part.path
    videos = sorted((video for part in parts for video in part.report.videos), key=lambda video: video.path)
    devices = ", ".join(dict.fromkeys(part.report.run.device for part in parts))
    collected = tuple(sorted({key for part in parts for key in part.report.collected or ()}))
    merged = Report(replace(first.report.run, device=devices), tuple(videos), collected=collected)
    missing = merged.missing
    if missing:
        sources = ", ".join(str(part.path) for part in parts if set(part.report.collected or ()) & set(missing))
        raise ConfigError(
            f"the reports have no result for {_count(missing, collected)} videos their runs collected: "
            f"{_listed(missing)} (collected by {sources})",
            hint="Pass every shard's report (a shard's report that lost its shard field reads as a whole run); "
            "a run that stopped early or ran a -k/-m selection left videos out: score them",
        )
    return merged


def check_gateable(part: NamedReport) -> None:
    """Refuse a report that cannot stand for a whole run: the gate's verdict is about every video that run
    collected, and a report that lacks some, or cannot show that it lacks none, would pass what it never saw."""
    _check_records_collected(part)
    report = part.report
    if report.shard is not None and _parse_shard(report.shard).count > 1:
        raise ConfigError(
            f"is shard {report.shard} of a split, not a whole run",
            path=part.path,
            hint="Merge every shard's report first (lipsync merge SHARD.json... -o ALL.json) "
            "and gate the merged report",
        )
    if not report.videos:
        raise ConfigError(
            "holds no videos: the run that wrote it gated nothing",
            path=part.path,
            hint="Point videos (--lipsync-videos) at the generated videos, score them and gate that report",
        )
    missing = report.missing
    if missing:
        raise ConfigError(
            f"has no result for {_count(missing, report.collected or ())} videos its run collected: {_listed(missing)}",
            path=part.path,
            hint="A run that stopped early or ran a -k/-m selection leaves videos out, and so does a lost shard: "
            "gate the report of a whole run (for a CI matrix, merge every shard's report)",
        )


def _check_records_collected(part: NamedReport) -> None:
    if part.report.collected is None:
        raise ConfigError(
            "does not record which videos its run collected, so it cannot show that it is complete (it was "
            "written by an older pytest-lipsync, or edited)",
            path=part.path,
            hint="Score the videos again with this version (--lipsync-json or lipsync score --json)",
        )


def _count(missing: Sequence[str], collected: Sequence[str]) -> str:
    return f"{len(missing)} of the {len(collected)}"


def _listed(keys: Sequence[str]) -> str:
    named = ", ".join(keys[:_LISTED])
    return named if len(keys) <= _LISTED else f"{named} and {len(keys) - _LISTED} more"


def _check_same_run(first: NamedReport, other: NamedReport) -> None:
    differences = run_differences(first.report.run, other.report.run, f"in {first.path}", f"in {other.path}")
    if differences:
        raise ConfigError(
            f"{first.path} and {other.path} cannot be merged, their numbers are not comparable: "
            f"{'; '.join(differences)}",
            hint=_SAME_RUN,
        )


def _check_shards(parts: Sequence[NamedReport]) -> None:
    """Sharded parts must be one split, each shard once and none missing; unsharded parts may join them."""
    seen: dict[Shard, Path] = {}
    for part in parts:
        if part.report.shard is None:
            continue
        shard = Shard.parse(part.report.shard)
        clash = next((path for known, path in seen.items() if known.count != shard.count or known == shard), None)
        if clash is not None:
            raise ConfigError(
                f"{clash} is shard {_shard_of(seen, clash)} and {part.path} is shard {shard}: "
                "they are not shards of one split",
                hint="Merge the reports of one run, one of each shard i/n",
            )
        seen[shard] = part.path
    if seen:
        count = next(iter(seen)).count
        missing = [f"{index}/{count}" for index in range(1, count + 1) if Shard(index, count) not in seen]
        if missing:
            raise ConfigError(
                f"shard {', '.join(missing)} is missing (merged: {', '.join(str(p) for p in seen.values())})",
                hint="Pass every shard's report: a gate on part of the videos would pass what it never saw",
            )


def _shard_of(seen: dict[Shard, Path], path: Path) -> Shard:
    return next(shard for shard, known in seen.items() if known == path)
