"""``lipsync score`` at dataset scale: ``--executor ray``, ``--jsonl`` with ``--resume``, ``--parquet``, ``--manifest``,
and a shard (the ``shard`` setting, ``--shard``).

Same settings, keys and JSON as a plain ``lipsync score``; what changes is where the videos come from (a
manifest, a shard of them), who scores them (the local pool or Ray actors) and where results go as they
finish (a JSON Lines file that survives an interruption, a Parquet table). See docs/dataset-scale.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.cli.options import EXIT_FAILED, EXIT_OK
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.results import Report, RunRecord, VideoScore
from pytest_lipsync.scale.workers import Job

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig
    from pytest_lipsync.scale.stream import Outcomes, ResumePlan, StreamSink

_LISTED = 10  # failed videos named in the closing summary; the rest are counted


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where videos are scored: this machine (--workers N processes) or Ray actors (pytest-lipsync[ray])",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR", help="a running Ray cluster (default: RAY_ADDRESS, or a local one)"
    )
    parser.add_argument(
        "--ray-cpus-per-actor",
        type=_positive_float,
        metavar="N",
        help="cores per actor (default 4, at most the cluster's); with GPUs, one actor per GPU with this many cores",
    )
    parser.add_argument(
        "--jsonl", type=Path, metavar="OUT.jsonl", help="append each video's result to a JSON Lines file as it finishes"
    )
    parser.add_argument(
        "--parquet",
        type=Path,
        metavar="OUT.parquet",
        help="write the results as a Parquet table, in row groups as they finish, whole when the run completes "
        "(pytest-lipsync[parquet])",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --jsonl: skip the videos the file already holds (same key and SHA-256)",
    )
    parser.add_argument(
        "--manifest", type=Path, metavar="FILE", help="the videos to score, listed in a text, CSV or Parquet file"
    )


def uses_dataset_options(args: argparse.Namespace) -> bool:
    """Whether the command needs this module (a plain ``lipsync score`` keeps its own, simpler path)."""
    return bool(
        args.executor != "local"
        or args.jsonl is not None
        or args.parquet is not None
        or args.resume
        or args.manifest is not None
    )


class _Results:
    """The executor's sink: results to the streamed outputs when there are any; kept for the table and the
    JSON only when no JSON Lines file holds them (a dataset's results never all sit in memory)."""

    def __init__(self, stream: StreamSink | None, keep: bool) -> None:
        self.stream = stream
        self.run: RunRecord | None = None
        self.kept: dict[int, VideoScore] | None = {} if keep else None

    def start(self, run: RunRecord) -> None:
        self.run = run
        if self.stream is not None:
            self.stream.start(run)

    def put(self, job: Job, result: VideoScore, sha256: str | None = None) -> None:
        if self.stream is not None:
            self.stream.put(job, result, sha256)
        if self.kept is not None:
            self.kept[job.number] = result


def run_dataset(args: argparse.Namespace, config: LipsyncConfig | None = None) -> int:
    """``config``: the settings when the caller resolved them already (a configured shard sent it here)."""
    from pytest_lipsync.cli.options import score_config, warn
    from pytest_lipsync.outputs import check_file_output
    from pytest_lipsync.reports.table import format_table, run_notice
    from pytest_lipsync.results import write_json_atomic
    from pytest_lipsync.scale.manifest import read_manifest
    from pytest_lipsync.scale.stream import ResumePlan, read_jsonl
    from pytest_lipsync.scale.workers import Progress, score_jobs
    from pytest_lipsync.session.videos import configured_videos, select_shard

    if args.executor == "ray":
        from pytest_lipsync.scale.ray import import_ray

        import_ray()  # a missing extra is a usage error before any work
    if args.parquet is not None:
        from pytest_lipsync.scale.parquet import import_pyarrow

        import_pyarrow("--parquet")
    if args.resume and args.jsonl is None:
        raise ConfigError("--resume needs --jsonl OUT.jsonl", hint="Resume into the JSON Lines file of the earlier run")
    config = config or score_config(args, Path.cwd(), os.environ)
    if config.settings.computes("fid"):
        raise ConfigError(
            "FID is one number over all the videos, and --executor ray, --jsonl, --manifest and --shard score them "
            "apart (a shard's FID is no part of the dataset's)",
            hint="Compute FID with a plain lipsync score --metrics fid --json over all the videos, and leave fid out "
            "of --metrics (and fid_max out of the thresholds) here",
        )
    arguments = [Path(path) for path in args.paths] + ([] if args.manifest is None else read_manifest(args.manifest))
    if not arguments:
        raise ConfigError("no videos given", hint="Give videos, folders or globs, or --manifest FILE")
    listing = configured_videos(config, arguments)
    if listing.unmatched:
        raise ConfigError(
            "; ".join(unmatched.message for unmatched in listing.unmatched),
            hint="Give folders and globs that hold videos, or leave out the ones that do not",
        )
    shard = config.options.shard
    entries = select_shard(listing.entries, shard)
    collected = tuple(entry.key for entry in listing.entries)  # every shard's: merge checks they add up
    if args.json is not None:
        check_file_output(args.json, "the results JSON")
    if args.parquet is not None:
        check_file_output(args.parquet, "the Parquet results")
    plan = ResumePlan()
    if args.jsonl is not None:
        check_file_output(args.jsonl, "the JSON Lines results")
        if args.resume and args.jsonl.exists():
            plan = ResumePlan.read(args.jsonl, {entry.key: entry.path for entry in entries})
            if plan.torn is not None:
                warn([plan.torn])
        elif args.jsonl.exists() and args.jsonl.stat().st_size > 0:
            raise ConfigError(
                "already holds results",
                path=args.jsonl,
                hint="Pass --resume to score only the videos it lacks, or write to a new file",
            )
    todo = [entry for entry in entries if entry.key not in plan.kept]
    jobs = [Job(number, entry) for number, entry in enumerate(todo, 1)]
    stream = _stream(args, collected, shard, plan)
    results = _Results(stream, keep=args.jsonl is None)
    complete = False
    try:
        if not jobs and plan.header is not None:
            results.start(plan.header.run)  # nothing left: record this run's listing in the header
        elif args.executor == "ray" and jobs:
            from pytest_lipsync.scale.ray import RayOptions, score_on_ray

            options = RayOptions(args.ray_address, args.ray_cpus_per_actor, args.workers if args.workers > 1 else None)
            score_on_ray(jobs, config.settings, Progress(len(jobs), args.quiet), results, options)
        else:
            score_jobs(jobs, config.settings, args.workers, Progress(len(jobs), args.quiet), sink=results)
        complete = True
    finally:
        if stream is not None:
            stream.close(complete)
    assert results.run is not None  # executors start the sink before they return
    if stream is None:
        assert results.kept is not None
        print(format_table([results.kept[job.number] for job in jobs]))
    else:
        _summary(stream.outcomes, args.jsonl or args.parquet, len(jobs), len(plan.kept))
    notice = run_notice(results.run)
    if notice is not None:
        print(notice)
    if args.json is not None:
        if results.kept is None:
            report = read_jsonl(args.jsonl).report()  # a report is the whole run: here only is it read whole
        else:
            report = Report(results.run, tuple(results.kept[job.number] for job in jobs), shard, collected)
        write_json_atomic(args.json, report.to_dict())
    failed = stream.outcomes.failed if stream is not None else [s for s in (results.kept or {}).values() if not s.ok]
    return EXIT_FAILED if failed else EXIT_OK


def _stream(
    args: argparse.Namespace, collected: tuple[str, ...], shard: str | None, plan: ResumePlan
) -> StreamSink | None:
    from pytest_lipsync.scale.stream import StreamSink

    if args.jsonl is None and args.parquet is None:
        return None
    return StreamSink(args.jsonl, args.parquet, collected, shard, plan)


def _summary(outcomes: Outcomes, path: Path, scored: int, kept: int) -> None:
    """A dataset's closing lines: counts and the first failures (the table of a million videos helps nobody)."""
    failed = outcomes.failed
    total = len(outcomes.errors)
    print(
        f"lipsync: {total} videos in {path} ({scored} scored now, {kept} kept from before): "
        f"{total - len(failed)} ok, {len(failed)} failed"
    )
    for key, error in failed[:_LISTED]:
        print(f"  {key}: {error.kind}: {error.message}", file=sys.stdout)
    if len(failed) > _LISTED:
        print(f"  and {len(failed) - _LISTED} more")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of cores")
    return value
