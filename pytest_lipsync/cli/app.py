"""The ``lipsync`` command: the same scores as the pytest gate, from a shell.

Exit codes: 0 every video scored (or the gate passed), 1 some video failed (or the gate failed), 2 usage or
configuration error (including missing weights), so that scripts can tell "the videos are bad" from "the
command is wrong".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync import __version__
from pytest_lipsync.display import display_name
from pytest_lipsync.errors import ConfigError, LipsyncError
from pytest_lipsync.quality.settings import COLORS, REGIONS, SSIM_WINDOWS
from pytest_lipsync.settings import FIDELITIES, PRECISIONS, PROTOCOLS, Settings

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except LipsyncError as exc:
        print(f"lipsync: error: {display_name(exc.message)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lipsync: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from pytest_lipsync.cli.bench import add_bench_arguments, run_bench
    from pytest_lipsync.cli.demo import add_demo_arguments, run_demo
    from pytest_lipsync.cli.init import add_init_arguments, run_init
    from pytest_lipsync.cli.models import (
        add_doctor_arguments,
        add_fetch_models_arguments,
        run_doctor,
        run_fetch_models,
    )
    from pytest_lipsync.cli.reports import (
        add_gate_arguments,
        add_merge_arguments,
        add_report_arguments,
        add_visualize_arguments,
        run_gate,
        run_merge,
        run_report,
        run_visualize,
    )

    parser = argparse.ArgumentParser(prog="lipsync", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    subcommands = (
        (
            "score",
            "score videos (LSE-D, LSE-C, AV offset; PSNR, SSIM with --reference)",
            _add_score_arguments,
            run_score,
        ),
        (
            "fetch-models",
            "download and verify the released model weights",
            add_fetch_models_arguments,
            run_fetch_models,
        ),
        ("doctor", "check that scoring can run here, and why not", add_doctor_arguments, run_doctor),
        ("merge", "combine shard reports into one (same settings and weights)", add_merge_arguments, run_merge),
        ("gate", "apply pyproject.toml's thresholds and baseline to a (merged) report", add_gate_arguments, run_gate),
        (
            "report",
            "write an HTML report (summary, plots, settings) from a results JSON",
            add_report_arguments,
            run_report,
        ),
        (
            "visualize",
            "write a copy of a video with its face tracks boxed, coloured by sync confidence",
            add_visualize_arguments,
            run_visualize,
        ),
        (
            "init",
            "add a [tool.lipsync] table to pyproject.toml and an example CI workflow",
            add_init_arguments,
            run_init,
        ),
        (
            "bench",
            "speed and memory per stage against the bare models (generated or given clips)",
            add_bench_arguments,
            run_bench,
        ),
        (
            "demo",
            "make a small offline project with stand-in weights and run score, gate, baseline and regression in it",
            add_demo_arguments,
            run_demo,
        ),
    )
    for name, help_text, add_arguments, run in subcommands:
        subparser = commands.add_parser(name, help=help_text)
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


# Settings `lipsync score` takes as options; anything not given comes from [tool.lipsync] or LIPSYNC_*.
_SCORE_KEYS = (
    "protocol",
    "fidelity",
    "device",
    "syncnet_weights",
    "s3fd_weights",
    "detector",
    "batch_size",
    "offline",
    "facedet_scale",
    "crop_scale",
    "min_track",
    "num_failed_det",
    "min_face_size",
    "scene_threshold",
    "reference",
    "ssim_window",
    "color",
    "region",
    "resize_reference",
    "max_length_mismatch",
    "timeout",
    "max_corrupt_fraction",
    "precision",
    "detect_every",
)


def _add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="VIDEO_OR_DIR", help="video files, or directories to search")
    add_settings_arguments(parser)
    _add_quality_arguments(parser, Settings())
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="score with N processes, one GPU (or a share of the cores) each",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring settings but ground truth's. Options default to "not given", so that pyproject.toml and the
    environment fill the rest (DESIGN)."""
    defaults = Settings()
    parser.add_argument("--protocol", choices=PROTOCOLS, help=f"default: {defaults.protocol}")
    parser.add_argument(
        "--fidelity",
        choices=FIDELITIES,
        help="'reference' (default) replays the reference scripts' lossy re-encodes (comparable with papers); "
        "'clean' skips them",
    )
    parser.add_argument("--syncnet-weights", metavar="PATH", help="SyncNet weights (default: the verified cache)")
    parser.add_argument(
        "--s3fd-weights", metavar="PATH", help="S3FD face detector weights (default: the verified cache)"
    )
    parser.add_argument(
        "--detector",
        metavar="MODULE:FACTORY",
        help="a face detector plug-in used instead of S3FD in the pipeline protocol",
    )
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, help=f"SyncNet windows per batch (default: {defaults.batch_size})")
    parser.add_argument("--offline", action="store_true", default=None, help="never download weights")
    _add_pipeline_arguments(parser, defaults)
    _add_limit_arguments(parser, defaults)
    _add_fast_arguments(parser)


def _add_pipeline_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    pipeline = parser.add_argument_group("pipeline protocol (PROTOCOL 3-5; the reference's defaults)")
    for key, kind in (
        ("min_track", int),
        ("num_failed_det", int),
        ("min_face_size", float),
        ("facedet_scale", float),
        ("crop_scale", float),
        ("scene_threshold", float),
    ):
        pipeline.add_argument(
            f"--{key.replace('_', '-')}", type=kind, metavar="N", help=f"default: {getattr(defaults, key)}"
        )


def _add_fast_arguments(parser: argparse.ArgumentParser) -> None:
    fast = parser.add_argument_group(
        "faster options (never the default; results say they were used: not the protocol's numbers)"
    )
    fast.add_argument("--precision", choices=PRECISIONS, help="the models' forward dtype (default: fp32)")
    fast.add_argument(
        "--detect-every", type=int, metavar="N", help="run the face detector on every N-th frame only (default: 1)"
    )


def _add_quality_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    quality = parser.add_argument_group("frame quality against ground truth (PSNR, SSIM)")
    quality.add_argument(
        "--reference",
        metavar="DIR",
        help="ground-truth videos, matched by path relative to the scored directory, then by file stem",
    )
    quality.add_argument("--ssim-window", choices=SSIM_WINDOWS, help=f"default: {defaults.ssim_window}")
    quality.add_argument("--color", choices=COLORS, help=f"'y': BT.601 luma (default: {defaults.color})")
    quality.add_argument("--region", choices=REGIONS, help=f"default: {defaults.region}")
    quality.add_argument(
        "--resize-reference",
        action="store_true",
        default=None,
        help="resize ground truth of another size (area interpolation)",
    )
    quality.add_argument(
        "--max-length-mismatch",
        type=int,
        metavar="FRAMES",
        help=f"frames the two videos may differ by (default: {defaults.max_length_mismatch})",
    )


def _add_limit_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    limits = parser.add_argument_group("limits per video (over them, the video fails and the others go on)")
    limits.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="time per video (default: 60 s + 100 s per second of video per 1280x720 of frame area)",
    )
    limits.add_argument(
        "--max-corrupt-fraction",
        type=float,
        metavar="F",
        help=f"share of damaged frames tolerated, 0 to 1 (default: {defaults.max_corrupt_fraction})",
    )


def score_config(args: argparse.Namespace, here: Path, environ: Mapping[str, str]) -> LipsyncConfig:
    """The options given, over ``LIPSYNC_*``, over the nearest pyproject.toml's ``[tool.lipsync]``: as in pytest.

    The ground-truth directory is made absolute here, from the project's directory as the gate takes it.
    """
    from pytest_lipsync.cli.reports import project_root
    from pytest_lipsync.config.resolution import Layer, environment_warnings, resolve, standard_layers

    warn(environment_warnings(environ))
    project = project_root(here)
    given = {key: value for key in _SCORE_KEYS if (value := getattr(args, key, None)) is not None}
    config = resolve(standard_layers(project / "pyproject.toml", environ, Layer("option", given), here), project)
    reference = config.path(config.settings.reference)
    return replace(config, settings=config.settings.replace(reference=None if reference is None else str(reference)))


def warn(messages: Sequence[str]) -> None:
    """Settings that are probably not what was meant: one line each on stderr, and the command goes on."""
    for message in messages:
        print(f"lipsync: warning: {display_name(message)}", file=sys.stderr)


def run_score(args: argparse.Namespace) -> int:
    from pytest_lipsync.outputs import check_file_output
    from pytest_lipsync.reports.table import format_table, run_notice
    from pytest_lipsync.results import Report, write_json_atomic
    from pytest_lipsync.scale.workers import Job, Progress, score_jobs
    from pytest_lipsync.session.videos import configured_videos

    config = score_config(args, Path.cwd(), os.environ)
    listing = configured_videos(config, [Path(path) for path in args.paths])
    if listing.unmatched:
        raise ConfigError(
            "; ".join(unmatched.message for unmatched in listing.unmatched),
            hint="Give folders and globs that hold videos, or leave out the ones that do not",
        )
    if args.json is not None:
        check_file_output(args.json, "the results JSON")
    jobs = [Job(number, entry) for number, entry in enumerate(listing.entries, 1)]
    run, scores = score_jobs(jobs, config.settings, args.workers, Progress(len(jobs), args.quiet))
    print(format_table(scores))
    notice = run_notice(run)
    if notice is not None:
        print(notice)
    if args.json is not None:
        # Every video given has an entry (a crashed worker's says so): the command gated exactly these.
        write_json_atomic(
            args.json, Report(run, tuple(scores), collected=tuple(score.path for score in scores)).to_dict()
        )
    return EXIT_OK if all(score.ok for score in scores) else EXIT_FAILED


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of workers")
    return value


if __name__ == "__main__":
    sys.exit(main())
