"""``lipsync score``: score videos from a shell, with the pytest gate's settings, keys and JSON."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pytest_lipsync.cli.dataset import add_dataset_arguments, run_dataset, uses_dataset_options
from pytest_lipsync.cli.options import EXIT_FAILED, EXIT_OK, add_settings_arguments, score_config
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.settings import Settings


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="VIDEO_OR_DIR", help="video files, or directories to search")
    add_settings_arguments(parser, "score")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="score with N processes, one GPU (or a share of the cores) each",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr (bars on a terminal, lines in CI logs)"
    )
    add_dataset_arguments(parser)


def run_score(args: argparse.Namespace) -> int:
    from pytest_lipsync.outputs import check_file_output
    from pytest_lipsync.reports.progress import progress_display
    from pytest_lipsync.reports.table import format_table, run_notice
    from pytest_lipsync.results import Report, write_json_atomic
    from pytest_lipsync.scale.workers import Job, Progress, score_jobs
    from pytest_lipsync.session.videos import configured_videos

    if uses_dataset_options(args):
        return run_dataset(args)
    if not args.paths:
        raise ConfigError("no videos given", hint="Give videos, folders or globs, or --manifest FILE")
    config = score_config(args, Path.cwd(), os.environ)
    if config.options.shard is not None:  # a share of the videos: reported with its shard, as a dataset's
        return run_dataset(args, config)
    listing = configured_videos(config, [Path(path) for path in args.paths])
    if listing.unmatched:
        raise ConfigError(
            "; ".join(unmatched.message for unmatched in listing.unmatched),
            hint="Give folders and globs that hold videos, or leave out the ones that do not",
        )
    pairs = [(entry.path, entry.reference) for entry in listing.entries if entry.reference is not None]
    if not pairs:
        config.settings.refuse_without_ground_truth("Give --reference DIR (or name it in [tool.lipsync.pairs])")
    if args.json is not None:
        check_file_output(args.json, "the results JSON")
    jobs = [Job(number, entry) for number, entry in enumerate(listing.entries, 1)]
    display = None if args.workers > 1 else progress_display(sys.stderr, args.quiet)
    run, scores = score_jobs(jobs, config.settings, args.workers, Progress(len(jobs), args.quiet, display))
    print(format_table(scores))
    dataset, fid_ok = (_dataset_fid(pairs, config.settings)) if config.settings.computes("fid") else (None, True)
    notice = run_notice(run)
    if notice is not None:
        print(notice)
    if args.json is not None:
        # Every video given has an entry (a crashed worker's says so): the command gated exactly these.
        collected = tuple(score.path for score in scores)
        write_json_atomic(args.json, Report(run, tuple(scores), collected=collected, dataset=dataset).to_dict())
    return EXIT_OK if fid_ok and all(score.ok for score in scores) else EXIT_FAILED


def _dataset_fid(pairs: list[tuple[Path, Path]], settings: Settings) -> tuple[dict[str, Any], bool]:
    """The report's ``dataset`` section with the FID of every video that has ground truth, and whether it could be
    computed (a video that cannot be read fails it, as it fails its own row)."""
    from pytest_lipsync.display import plural
    from pytest_lipsync.errors import VideoError
    from pytest_lipsync.scoring.dataset import dataset_fid

    try:
        fid = dataset_fid(pairs, settings)
    except VideoError as exc:
        print(f"FID (dataset): not computed: {exc.kind}: {exc.message}")
        return {"fid": {"value": None, "error": {"kind": exc.kind, "message": exc.message}}}, False
    print(
        f"FID (dataset): {fid.value:.4f} over {plural(fid.videos, 'video')} ({fid.generated_frames} frames) against "
        f"{plural(fid.references, 'ground truth')} ({fid.reference_frames} frames)"
    )
    return {"fid": fid.to_json()}, True


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of workers")
    return value
