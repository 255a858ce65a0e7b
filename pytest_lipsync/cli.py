"""The ``lipsync`` command: the same scores as the pytest gate, from a shell.

Exit codes: 0 every video scored (or the gate passed), 1 some video failed (or the gate failed), 2 usage or
configuration error (including missing weights), so that scripts can tell "the videos are bad" from "the
command is wrong".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_lipsync import __version__
from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.quality.settings import COLORS, SSIM_WINDOWS
from pytest_lipsync.settings import FIDELITIES, PROTOCOLS, Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except LipsyncError as exc:
        print(f"lipsync: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lipsync: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from pytest_lipsync.models.commands import (
        add_doctor_arguments,
        add_fetch_models_arguments,
        run_doctor,
        run_fetch_models,
    )
    from pytest_lipsync.report_commands import add_gate_arguments, add_merge_arguments, run_gate, run_merge
    from pytest_lipsync.scaffold import add_init_arguments, run_init

    parser = argparse.ArgumentParser(prog="lipsync", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    subcommands = (
        ("score", "score videos (LSE-D, LSE-C, AV offset; PSNR, SSIM with --reference)", _add_score_arguments, run_score),
        ("fetch-models", "download and verify the released model weights", add_fetch_models_arguments, run_fetch_models),
        ("doctor", "check that scoring can run here, and why not", add_doctor_arguments, run_doctor),
        ("merge", "combine shard reports into one (same settings and weights)", add_merge_arguments, run_merge),
        ("gate", "apply pyproject.toml's thresholds and baseline to a (merged) report", add_gate_arguments, run_gate),
        ("init", "add a [tool.lipsync] table to pyproject.toml and an example CI workflow", add_init_arguments, run_init),
    )
    for name, help_text, add_arguments, run in subcommands:
        subparser = commands.add_parser(name, help=help_text)
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def _add_score_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("paths", nargs="+", metavar="VIDEO_OR_DIR", help="video files, or directories to search")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=defaults.protocol)
    parser.add_argument(
        "--fidelity",
        choices=FIDELITIES,
        default=defaults.fidelity,
        help="'reference' replays the reference scripts' lossy re-encodes (comparable with papers); "
        "'clean' skips them",
    )
    parser.add_argument("--syncnet-weights", metavar="PATH", help="SyncNet weights (default: the verified cache)")
    parser.add_argument("--s3fd-weights", metavar="PATH", help="S3FD face detector weights (default: the verified cache)")
    parser.add_argument(
        "--detector",
        metavar="MODULE:FACTORY",
        help="a face detector plug-in used instead of S3FD in the pipeline protocol",
    )
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="SyncNet windows per batch")
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N", help="score with N processes, one GPU (or a share of the cores) each"
    )
    _add_quality_arguments(parser, defaults)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def _add_quality_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    quality = parser.add_argument_group("frame quality against ground truth (PSNR, SSIM)")
    quality.add_argument(
        "--reference",
        metavar="DIR",
        help="ground-truth videos, matched by path relative to the scored directory, then by file stem",
    )
    quality.add_argument("--ssim-window", choices=SSIM_WINDOWS, default=defaults.ssim_window)
    quality.add_argument("--color", choices=COLORS, default=defaults.color, help="'y': BT.601 luma")
    quality.add_argument(
        "--resize-reference", action="store_true", help="resize ground truth of another size (area interpolation)"
    )
    quality.add_argument(
        "--max-length-mismatch",
        type=int,
        default=defaults.max_length_mismatch,
        metavar="FRAMES",
        help="frames the two videos may differ by (default: %(default)s)",
    )


def run_score(args: argparse.Namespace) -> int:
    from pytest_lipsync.media.discover import discover_videos
    from pytest_lipsync.quality.pairing import videos_root
    from pytest_lipsync.reports.table import format_table
    from pytest_lipsync.results import Report, write_json_atomic
    from pytest_lipsync.workers import Job, Progress, score_jobs

    settings = Settings(
        protocol=args.protocol,
        fidelity=args.fidelity,
        device=args.device,
        syncnet_weights=args.syncnet_weights,
        s3fd_weights=args.s3fd_weights,
        detector=args.detector,
        batch_size=args.batch_size,
        offline=args.offline,
        reference=args.reference,
        ssim_window=args.ssim_window,
        color=args.color,
        resize_reference=args.resize_reference,
        max_length_mismatch=args.max_length_mismatch,
    )
    videos = discover_videos(args.paths)
    if not videos:
        print(f"lipsync: error: no video files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    jobs = [Job(number, video, videos_root(video, args.paths)) for number, video in enumerate(videos, 1)]
    run, scores = score_jobs(jobs, settings, args.workers, Progress(len(jobs), args.quiet))
    print(format_table(scores))
    if args.json is not None:
        write_json_atomic(args.json, Report(run, tuple(scores)).to_dict())
    return EXIT_OK if all(score.ok for score in scores) else EXIT_FAILED


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of workers")
    return value


if __name__ == "__main__":
    sys.exit(main())
