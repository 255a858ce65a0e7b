"""The ``lipsync`` command: the same scores as the pytest gate, from a shell.

Exit codes: 0 every video scored (or the gate passed), 1 some video failed (or the gate failed), 2 usage or
configuration error (including missing weights), so that scripts can tell "the videos are bad" from "the
command is wrong".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_lipsync.cli.options import EXIT_USAGE
from pytest_lipsync.display import display_name
from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.version import __version__

if TYPE_CHECKING:
    pass


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
    from pytest_lipsync.cli.score import add_score_arguments, run_score

    # The docstring is reStructuredText; --help is plain text.
    parser = argparse.ArgumentParser(prog="lipsync", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    subcommands = (
        (
            "score",
            "score videos (LSE-D, LSE-C, AV offset; PSNR, SSIM with --reference)",
            add_score_arguments,
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


if __name__ == "__main__":
    sys.exit(main())
