"""``lipsync merge``, ``lipsync gate``, ``lipsync report`` and ``lipsync visualize``: argument definitions and command bodies (exit 0 passed,
1 gate failed, 2 usage or configuration error, which ``cli.main`` turns :class:`LipsyncError` into)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pytest_lipsync.config import Layer
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.keys import Thresholds, hints

# The gate's own options: where the baseline is and whether to rewrite it, the thresholds, the allow list.
_GATE_KEYS = ("baseline", "update_baseline", *hints(Thresholds), "allow")


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json", help="shard reports (--lipsync-json)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="ALL.json", help="the merged report")


def run_merge(args: argparse.Namespace) -> int:
    from pytest_lipsync.merge import load_report, merge_reports
    from pytest_lipsync.results import write_json_atomic

    if args.output.resolve() in {path.resolve() for path in args.reports}:
        raise ConfigError("is both an input and the output", path=args.output, hint="Write the merged report to a new file")
    merged = merge_reports([load_report(path) for path in args.reports])
    write_json_atomic(args.output, merged.to_dict())
    print(f"lipsync: merged {len(merged.videos)} videos from {len(args.reports)} reports into {args.output}")
    return 0


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="RESULTS.json", help="a report (usually merged)")
    parser.add_argument("--baseline", metavar="PATH", help="baseline file (default: [tool.lipsync] baseline)")
    parser.add_argument("--update-baseline", action="store_true", default=None, help="write the baseline from the report")
    for key in hints(Thresholds):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, metavar="LIMIT", help=f"the {key!r} threshold")
    parser.add_argument("--allow", action="append", metavar="KIND", help="error kind that is an expected failure; repeatable")


def run_gate(args: argparse.Namespace) -> int:
    from pytest_lipsync.cli import warn
    from pytest_lipsync.merge import load_report
    from pytest_lipsync.report_gate import gate_report

    here = Path.cwd()
    options = Layer("option", {key: value for key in _GATE_KEYS if (value := getattr(args, key)) is not None})
    report = load_report(args.report).report
    result = gate_report(report, str(args.report), project_root(here), os.environ, options, here)
    warn(result.warnings)
    for line in result.lines:
        print(line)
    return 0 if result.passed else 1


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="RESULTS.json", help="a report (--lipsync-json, lipsync score --json)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="directory for index.html and its plots")
    parser.add_argument("--baseline", type=Path, metavar="PATH", help="a baseline file: show each metric's change since it")


def run_report(args: argparse.Namespace) -> int:
    from pytest_lipsync.baseline import baseline_metrics, check_compatible, load_baseline
    from pytest_lipsync.cli import score_config
    from pytest_lipsync.merge import load_report
    from pytest_lipsync.reports.github import append_step_summary, artifact_line, in_github_actions
    from pytest_lipsync.reports.html import write_report

    report = load_report(args.report).report
    baseline = None if args.baseline is None else load_baseline(args.baseline)
    if args.baseline is not None and baseline is None:
        raise ConfigError("does not exist", path=args.baseline, hint="Pass the baseline file the gate uses")
    if baseline is not None:
        check_compatible(baseline, report.run)  # changes from other settings or weights would mislead
    rules = score_config(args, Path.cwd(), os.environ).gate  # the project's lse_c_min places the confidence bands
    page = write_report(report, args.output, None if baseline is None else baseline_metrics(baseline), rules)
    print(f"lipsync: HTML report written to {page}")
    link = artifact_line(os.environ) if in_github_actions(os.environ) else None
    if link is not None:
        append_step_summary(link, os.environ)
    return 0


def add_visualize_arguments(parser: argparse.ArgumentParser) -> None:
    from pytest_lipsync.cli import add_settings_arguments

    parser.add_argument("video", type=Path, metavar="VIDEO", help="the video to annotate")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="the annotated copy (MP4)")
    add_settings_arguments(parser)


def run_visualize(args: argparse.Namespace) -> int:
    """Score the video's tracks with the settings ``lipsync score`` would use and write the annotated copy;
    the colours' threshold is the video's ``lse_c_min`` in the project's gate (see ``reports.confidence``)."""
    from pytest_lipsync.cli import score_config
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.reports.annotate import visualize
    from pytest_lipsync.reports.confidence import band_for
    from pytest_lipsync.scoring import Scorer, no_tracks_to_draw
    from pytest_lipsync.session import video_key

    config = score_config(args, Path.cwd(), os.environ)
    if config.settings.protocol == "cropped":
        raise no_tracks_to_draw()
    if args.output.resolve() == args.video.resolve():
        raise ConfigError("is both the video and the output", path=args.output, hint="Write the annotated copy to a new file")
    _check_writable(args.output)
    source = open_video(args.video, config.settings.limits)  # a wrong path fails before the models load
    band = band_for(config.gate, video_key(args.video, config.root))
    written = visualize(source, Scorer(config.settings.replace(reference=None)), args.output, band)
    print(
        f"lipsync: annotated video written to {written.path}: {written.frames} frames, {written.tracks} face "
        f"track(s), {written.frames_without_track} frames without a track; box colours: {band.label}"
    )
    return 0


def _check_writable(output: Path) -> None:
    """Refuse an output that cannot be written before minutes of scoring, not after."""
    hint = "Give -o a file path in a directory you can write, e.g. annotated/VIDEO.mp4"
    if output.is_dir():
        raise ConfigError("is a directory, not a file to write the annotated video to", path=output, hint=hint)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot be written: {exc.strerror}", path=output, hint=hint) from None
    if not os.access(output.parent, os.W_OK):
        raise ConfigError(f"cannot be written: {output.parent} is not writable", path=output, hint=hint)


def project_root(start: Path) -> Path:
    """The nearest directory from ``start`` upwards with a ``pyproject.toml``, as pytest finds its rootdir."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start
