"""``lipsync merge``, ``lipsync gate``, ``lipsync report`` and ``lipsync visualize``: argument definitions and command
bodies (exit 0 passed, 1 gate failed, 2 usage or configuration error, which ``cli.app`` turns :class:`LipsyncError`
into)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pytest_lipsync.cli.options import project_root
from pytest_lipsync.config.resolution import Layer
from pytest_lipsync.config.table import add_options, keys_for
from pytest_lipsync.display import plural
from pytest_lipsync.errors import ConfigError

# The settings `lipsync gate` takes (their declarations say so): the baseline and whether to rewrite it, the
# thresholds, the allow-list.
_GATE_KEYS = keys_for("gate")


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json", help="shard reports (--lipsync-json)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="ALL.json", help="the merged report")


def run_merge(args: argparse.Namespace) -> int:
    from pytest_lipsync.outputs import check_file_output
    from pytest_lipsync.results import write_json_atomic
    from pytest_lipsync.scale.merge import load_report, merge_reports

    if args.output.resolve() in {path.resolve() for path in args.reports}:
        raise ConfigError(
            "is both an input and the output", path=args.output, hint="Write the merged report to a new file"
        )
    check_file_output(args.output, "the merged report")
    merged = merge_reports([load_report(path) for path in args.reports])
    write_json_atomic(args.output, merged.to_dict())
    videos, reports = plural(len(merged.videos), "video"), plural(len(args.reports), "report")
    print(f"lipsync: merged {videos} from {reports} into {args.output}")
    return 0


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="RESULTS.json", help="a report (usually merged)")
    add_options(parser, "gate")


def run_gate(args: argparse.Namespace) -> int:
    from pytest_lipsync.cli.options import warn
    from pytest_lipsync.config.resolution import resolve
    from pytest_lipsync.scale.merge import check_gateable, load_report
    from pytest_lipsync.session.report import gate_report

    here = Path.cwd()
    options = Layer("option", {key: value for key in _GATE_KEYS if (value := getattr(args, key)) is not None})
    resolve([options], here)  # a malformed option is named before the report is read
    loaded = load_report(args.report)
    check_gateable(loaded)
    result = gate_report(loaded.report, str(args.report), project_root(here), os.environ, options, here)
    warn(result.warnings)
    for line in result.lines:
        print(line)
    return 0 if result.passed else 1


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "report", type=Path, metavar="RESULTS.json", help="a report (--lipsync-json, lipsync score --json)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="directory for index.html and its plots"
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="PATH", help="a baseline file: show each metric's change since it"
    )


def run_report(args: argparse.Namespace) -> int:
    from pytest_lipsync.cli.options import score_config
    from pytest_lipsync.gate.baseline import baseline_metrics, check_compatible, load_baseline
    from pytest_lipsync.outputs import check_folder_output
    from pytest_lipsync.reports.github import append_step_summary, artifact_line, in_github_actions
    from pytest_lipsync.reports.html import write_report
    from pytest_lipsync.scale.merge import load_report

    check_folder_output(args.output, "the HTML report")
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
    from pytest_lipsync.cli.options import add_settings_arguments

    parser.add_argument("video", type=Path, metavar="VIDEO", help="the video to annotate")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="the annotated copy (MP4)")
    add_settings_arguments(parser, "visualize")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr (bars on a terminal, lines in CI logs)"
    )


def run_visualize(args: argparse.Namespace) -> int:
    """Score the video's tracks with the settings ``lipsync score`` would use and write the annotated copy;
    the colours' threshold is the video's ``lse_c_min`` in the project's gate (see ``reports.confidence``)."""
    from pytest_lipsync.cli.options import score_config
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.outputs import check_file_output
    from pytest_lipsync.reports.annotate import visualize
    from pytest_lipsync.reports.confidence import band_for
    from pytest_lipsync.reports.progress import progress_display
    from pytest_lipsync.scoring.scorer import Scorer, no_tracks_to_draw
    from pytest_lipsync.session.videos import video_key

    config = score_config(args, Path.cwd(), os.environ)
    if config.settings.protocol == "cropped":
        raise no_tracks_to_draw()
    if args.output.resolve() == args.video.resolve():
        raise ConfigError(
            "is both the video and the output", path=args.output, hint="Write the annotated copy to a new file"
        )
    check_file_output(args.output, "the annotated video")
    source = open_video(args.video, config.settings.limits)  # a wrong path fails before the models load
    band = band_for(config.gate, video_key(args.video, config.root))
    display = progress_display(sys.stderr, args.quiet)
    try:
        written = visualize(source, Scorer(config.settings.replace(reference=None)), args.output, band, display)
    finally:
        if display is not None:
            display.close()
    print(
        f"lipsync: annotated video written to {written.path}: {written.frames} frames, {written.tracks} face "
        f"track(s), {written.frames_without_track} frames without a track; box colours: {band.label}"
    )
    return 0
