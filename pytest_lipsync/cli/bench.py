"""``lipsync bench`` and ``python benchmarks/bench.py``: arguments, the plan they make, and the output."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.bench.plan import METRICS, PRESETS, Preset

if TYPE_CHECKING:
    from pytest_lipsync.bench.driver import BenchPlan

_EPILOG = """\
Every (clip, protocol, variant) runs in a fresh process (peak RSS is per process). Without the released
weights on this machine, stand-in weights are used and every output says "stand-in weights: timings only".
Generated clips are kept in --workdir (default: a temporary directory) and reused.

examples:
  lipsync bench --preset quick
  lipsync bench --preset full --json bench.json --markdown bench.md
  lipsync bench --resolutions 720p --seconds 10 --faces 1 --protocols pipeline --variant fidelity=clean
  lipsync bench --clips /path/to/real/clips --protocols cropped
  lipsync bench --metrics lpips fid cpbd --metrics-only --resolutions 224x224
"""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Speed and memory per stage, against the bare models."
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="the matrix to start from (default: quick)"
    )
    parser.add_argument("--resolutions", nargs="+", metavar="SIZE", help="720p, 1080p or WIDTHxHEIGHT")
    parser.add_argument("--seconds", nargs="+", type=float, metavar="S", help="lengths of the generated clips")
    parser.add_argument("--faces", nargs="+", type=int, metavar="N", help="faces side by side in the generated clips")
    parser.add_argument(
        "--clips", type=Path, metavar="DIR", help="score these clips as they are instead of generated ones"
    )
    parser.add_argument("--protocols", nargs="+", metavar="P", help="pipeline and/or cropped (default: both)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="settings changes to compare with the baseline, e.g. precision=bf16, detect_every=2 (repeatable)",
    )
    parser.add_argument(
        "--no-quality", dest="quality", action="store_false", help="skip PSNR/SSIM (clip against itself)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--bare-calls",
        type=int,
        metavar="N",
        help="time about N bare S3FD passes per run, each right after one of its calls, and scale from them",
    )
    parser.add_argument(
        "--single-frames", type=int, metavar="N", help="frames for S3FD batched vs one per call (0: skip)"
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        default=[],
        metavar="METRIC",
        help=f"also time these frame metrics against their bare computation and the peer scripts' loops "
        f"({', '.join(METRICS)}; stand-in weights)",
    )
    parser.add_argument("--metric-frames", type=int, metavar="N", help="frames per clip the frame metrics are timed on")
    parser.add_argument(
        "--metrics-only", action="store_true", help="time the frame metrics only: no LSE run, no S3FD check"
    )
    parser.add_argument(
        "--standin", action="store_true", help="use stand-in weights even when the released ones are here"
    )
    parser.add_argument("--workdir", type=Path, help="where clips, stand-in weights and raw results go")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the measurements as JSON")
    parser.add_argument("--markdown", type=Path, metavar="OUT", help="write the tables as Markdown")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def run_bench(args: argparse.Namespace) -> int:
    from pytest_lipsync.bench.driver import run_plan
    from pytest_lipsync.bench.report import format_report
    from pytest_lipsync.results import write_json_atomic, write_text_atomic

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args, PRESETS[args.preset], workdir)
    progress = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    document = run_plan(plan, progress, command=sys.argv)
    text = format_report(document)
    print(text)
    if args.json is not None:
        write_json_atomic(args.json, document)
    if args.markdown is not None:
        write_text_atomic(args.markdown, text)
    return 1 if document["failed"] or any(run["error"] for run in document["runs"]) else 0


def make_plan(args: argparse.Namespace, preset: Preset, workdir: Path) -> BenchPlan:
    """The preset with every option given replacing its part; clips are generated (or listed) here."""
    from pytest_lipsync.bench.clips import generated_clip, given_clips, parse_resolution
    from pytest_lipsync.bench.driver import BenchPlan
    from pytest_lipsync.bench.models import BenchWeights, bench_weights, standin_metric_weights
    from pytest_lipsync.bench.plan import check_protocols, variants
    from pytest_lipsync.errors import ConfigError
    from pytest_lipsync.settings import Settings

    Settings(device=args.device)  # a bad --device is refused here, before any clip is generated
    metrics = tuple(dict.fromkeys(args.metrics))
    if args.metrics_only and not metrics:
        raise ConfigError("--metrics-only times nothing without --metrics", hint="Add e.g. --metrics lpips fid cpbd")
    metric_frames = args.metric_frames if args.metric_frames is not None else preset.metric_frames
    if metrics and metric_frames < 3:
        raise ConfigError(f"--metric-frames is {metric_frames}", hint="Time the frame metrics on 3 frames or more")
    protocols = check_protocols(args.protocols or list(preset.protocols))
    chosen = variants(args.variant)
    resolutions = args.resolutions or list(preset.resolutions)
    for resolution in resolutions:
        parse_resolution(resolution)
    if args.clips is not None:
        clips = given_clips(args.clips)
    else:
        clips = [
            generated_clip(workdir, resolution, seconds, faces)
            for resolution in resolutions
            for seconds in args.seconds or preset.seconds
            for faces in args.faces or preset.faces
        ]
    lse = not args.metrics_only
    return BenchPlan(
        clips=tuple(clips),
        protocols=protocols,
        variants=chosen,
        # Without an LSE run no SyncNet or S3FD weights are needed: none are made.
        weights=bench_weights(workdir, args.standin) if lse else BenchWeights("-", "-", standin=True),
        device=args.device,
        quality=args.quality,
        bare_calls=args.bare_calls if args.bare_calls is not None else preset.bare_calls,
        single_frames=args.single_frames if args.single_frames is not None else preset.single_frames,
        workdir=workdir,
        metrics=metrics,
        metric_frames=metric_frames,
        metric_weights=standin_metric_weights(workdir, metrics),
        lse=lse,
    )
