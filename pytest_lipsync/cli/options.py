"""What several ``lipsync`` subcommands share: the scoring settings as options, their resolution over the
environment and ``pyproject.toml`` (as the pytest gate resolves them), warnings and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.display import display_name
from pytest_lipsync.quality.settings import COLORS, REGIONS, SSIM_WINDOWS
from pytest_lipsync.settings import FIDELITIES, PRECISIONS, PROTOCOLS, Settings

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


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


def add_settings_arguments(parser: argparse.ArgumentParser, *, protocol: bool = True) -> None:
    """The scoring settings but ground truth's. Options default to "not given", so that pyproject.toml and the
    environment fill the rest (DESIGN). ``protocol=False`` for a command that works in one protocol only."""
    defaults = Settings()
    if protocol:
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


def add_quality_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
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


def project_root(start: Path) -> Path:
    """The nearest directory from ``start`` upwards with a ``pyproject.toml``, as pytest finds its rootdir."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start
