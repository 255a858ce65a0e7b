"""``lipsync demo``: a small project made on the spot, and the commands a user would type, run in it.

It shows the whole loop (score, gate, baseline, regression) in a minute or two on a laptop CPU, offline: the
clips are generated, SyncNet's weights are the deterministic stand-ins of :mod:`pytest_lipsync.synthetic`,
and faces are found by the marker detector plug-in instead of S3FD, whose weights would be a download. So
every number it prints tests the tool, not lip sync, and the output says so. The commands run as separate
processes in the project, without the caller's ``LIPSYNC_*``, ``PYTEST_*`` and ``GITHUB_*`` variables, so
their output is what a user typing them there gets (and a CI job running the demo gets no annotations).
pytest keeps its cache in the project, as it would for the user: the gate's second run replays the scores of
the first instead of loading a model, and says so, which is part of what the demo shows.

Importing this module stays cheap: the clip writer and the stand-in weights load when a project is made.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lipsync.errors import ConfigError

STANDIN_LINE = "numbers from stand-in weights: they test the tool, not lip sync"
DEFAULT_DIRECTORY = Path("lipsync-demo")
MARKER_FILE = ".lipsync-demo"  # says "an earlier demo": its files may be replaced by the next one
WEIGHTS = "weights/syncnet_standin.model"
SCORES = "scores.json"
BASELINE = "lipsync-baseline.json"
# What a demo writes (pytest adds its cache): all a later demo in the same directory removes.
OWN_PATHS = (MARKER_FILE, "pyproject.toml", "videos", "weights", SCORES, BASELINE, ".pytest_cache")
# The caller's variables that would change what the commands do, or where they report.
_CALLERS_VARIABLES = ("LIPSYNC_", "PYTEST_", "GITHUB_")
_PROGRAMS = {"lipsync": ("-m", "pytest_lipsync.cli.app"), "pytest": ("-m", "pytest")}
_SECONDS = 4.0  # 100 frames at 25 fps: about 5 s of SyncNet per clip on one CPU core
_SIZE = 160  # pixels: the marker detector and the crops are cheap at this size, and faces pass min_face_size


@dataclass(frozen=True)
class DemoClip:
    """One generated clip: a face ringed by the marker, its mouth and its voice following one seed."""

    name: str
    seed: int
    audio_delay_frames: int = 0
    about: str = "in sync"


CLIPS = (
    DemoClip("videos/alice.mp4", 1),
    DemoClip("videos/bob.mp4", 2),
    DemoClip("videos/carol_late_audio.mp4", 3, 6, "audio 6 frames (240 ms) late: scores worse"),
)
GOOD, WORSE = CLIPS[0].name, CLIPS[2].name

# The thresholds suit the stand-in weights' scale (LSE-D about 7 to 8.5, LSE-C about 0.9 to 1.3 on these
# clips) with room for another CPU's or a GPU's rounding; the regression tolerances catch the late clip
# copied over a good one (LSE-D about +1.2, LSE-C about -0.4).
_PYPROJECT = f"""\
# Made by `lipsync demo`. Its numbers come from stand-in weights: they test the tool, not lip sync.
# For real scores, fetch the released weights (`lipsync fetch-models`), drop syncnet_weights, detector,
# fidelity and min_track, and start from the thresholds `lipsync init` writes.

# Makes this directory pytest's rootdir: video keys and the baseline are relative to it.
[tool.pytest.ini_options]

[tool.lipsync]
videos = "videos"
protocol = "pipeline"
# Finds the clips' magenta face rings, instead of S3FD, whose weights are a download.
detector = "pytest_lipsync.synthetic.faces:marker_detector"
syncnet_weights = "{WEIGHTS}"
# The stand-in weights were fitted on clean frames: skip the reference scripts' lossy re-encodes.
fidelity = "clean"
# The clips are {_SECONDS:g} s long: take face tracks from 2 s (the reference's default wants 4 s).
min_track = 50
offline = true

[tool.lipsync.thresholds]
lse_d_max = 9.0
lse_c_min = 0.5

# Compared with the baseline, once one is configured.
[tool.lipsync.regression]
lse_d = "+0.3"
lse_c = "-0.2"
"""

DESCRIPTION = f"""\
Make a small pytest-lipsync project in DIR (default: ./{DEFAULT_DIRECTORY}) and run in it, one after another,
the commands a user would type, each shown as `$ command` before its output:

  1. lipsync score videos/ --json scores.json         the numbers
  2. pytest --lipsync-lse-c-min=X                     fails: X is just above the worst clip's LSE-C
  3. pytest                                           passes with pyproject.toml's thresholds
  4. pytest --lipsync-update-baseline                 writes {BASELINE} (named in pyproject.toml first)
  5. cp the late clip over a good one; pytest         fails on a [tool.lipsync.regression] rule

The project: three generated {_SECONDS:g} s talking-face clips of {_SIZE}x{_SIZE} pixels (one with its audio late),
stand-in SyncNet weights in {WEIGHTS}, the marker face detector plug-in instead
of S3FD, and a pyproject.toml with a [tool.lipsync] table. No network. Every number it prints comes from
stand-in weights: they test the tool, not lip sync.

DIR must be new, empty, or an earlier demo (it has a {MARKER_FILE} file), whose own files are replaced;
anything else in it is left alone. Exit code 0 when every step did what it should (the failing ones
failing), 1 when one did not (the demo stops there and names it), 2 when DIR cannot be used.
"""


@dataclass(frozen=True)
class Change:
    """A change to the project that a user would make before a command, shown as they would type or do it."""

    shown: str
    apply: Callable[[Path], None]


@dataclass(frozen=True)
class Step:
    """One command as the user types it (``lipsync ...`` or ``pytest ...``) and what it must do.

    ``proof`` is text its output must hold, so that a step that should fail fails for the intended reason;
    ``change`` is made first.
    """

    title: str
    command: tuple[str, ...]
    expected: int
    proof: str = ""
    change: Change | None = None


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIRECTORY,
        metavar="DIR",
        help=f"where to make the project (default: {DEFAULT_DIRECTORY})",
    )


def run_demo(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    replaced = claim_directory(directory)
    _say("=" * 78)
    _say(f"lipsync demo: a small project in {directory}, scored offline with stand-in SyncNet weights")
    _say("and a marker face detector, both made for testing pytest-lipsync.")
    _say(STANDIN_LINE)
    _say("=" * 78)
    _say(
        f"{'replacing the earlier demo; ' if replaced else ''}"
        "writing the project (a machine's first demo also fits the stand-in weights)"
    )
    write_project(directory)
    for clip in CLIPS:
        _say(f"  {clip.name:<30} {_SECONDS:g} s, {_SIZE}x{_SIZE}, {clip.about}")
    _say(f"  {WEIGHTS:<30} stand-in SyncNet weights, in the released file format")
    _say(f"  {'pyproject.toml':<30} [tool.lipsync]: pipeline protocol, marker detector, thresholds, regression")
    environment = _environment(os.environ)
    for number, step in enumerate(_steps(directory), 1):
        _say(f"\nstep {number}: {step.title}")
        if step.change is not None:
            step.change.apply(directory)
            _say(step.change.shown)
        _say(f"$ {shlex.join(step.command)}")
        code, output = _run(step.command, directory, environment)
        problem = check(step, code, output)
        _say(f"-> exit code {code}, as expected" if problem is None else f"-> NOT as expected: {problem}")
        _say(STANDIN_LINE)
        if problem is not None:
            _say(f"\nlipsync demo: step {number} (`{shlex.join(step.command)}`) {problem}; stopped there")
            return 1
    _say(
        f"\nlipsync demo: every step behaved as expected. The project stays in {directory}; "
        "for your own videos, start with `lipsync init`."
    )
    return 0


def write_project(directory: Path) -> None:
    """Write the demo project into ``directory``, which :func:`claim_directory` has cleared."""
    from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
    from pytest_lipsync.synthetic.weights import standin_syncnet_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER_FILE).write_text("Made by `lipsync demo`: a later demo here replaces the files it made.\n")
    (directory / "videos").mkdir()
    for clip in CLIPS:
        spec = ClipSpec(
            _SECONDS, width=_SIZE, height=_SIZE, seed=clip.seed, audio_delay_frames=clip.audio_delay_frames, marker=True
        )
        write_clip(directory / clip.name, spec)
    (directory / WEIGHTS).parent.mkdir()
    shutil.copyfile(standin_syncnet_file(), directory / WEIGHTS)
    _write_pyproject(directory, baseline=False)


def _write_pyproject(directory: Path, *, baseline: bool) -> None:
    """The demo's pyproject.toml; with ``baseline``, its [tool.lipsync] table names the baseline file."""
    videos = 'videos = "videos"\n'
    text = _PYPROJECT.replace(videos, f'{videos}baseline = "{BASELINE}"\n') if baseline else _PYPROJECT
    (directory / "pyproject.toml").write_text(text, encoding="utf-8")


def _add_baseline(directory: Path) -> None:
    _write_pyproject(directory, baseline=True)


def _copy_worse_over_good(directory: Path) -> None:
    shutil.copyfile(directory / WORSE, directory / GOOD)


def claim_directory(directory: Path) -> bool:
    """Check that ``directory`` may hold the demo, removing an earlier demo's files; True when there were some.

    Refuses (:class:`ConfigError`, exit code 2) a file, or a non-empty directory that no demo made: the
    demo removes only what it wrote itself, and needs a directory where that is everything.
    """
    if directory.exists() and not directory.is_dir():
        raise ConfigError("is a file, not a directory", path=directory, hint="Give a new or empty directory")
    if not directory.is_dir() or not any(directory.iterdir()):
        return False
    if not (directory / MARKER_FILE).is_file():
        raise ConfigError(
            f"is not empty and is not an earlier demo (it has no {MARKER_FILE} file), and the demo writes a "
            "whole project",
            path=directory,
            hint=f"Give a new or empty directory, e.g. `lipsync demo {DEFAULT_DIRECTORY}-2`",
        )
    for name in OWN_PATHS:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return True


def _steps(project: Path) -> Iterator[Step]:
    """The demo's commands in order. Made one at a time: the second reads the first one's results."""
    yield Step("score every video, the results as JSON", ("lipsync", "score", "videos/", "--json", SCORES), 0)
    threshold = just_above_worst(json.loads((project / SCORES).read_text(encoding="utf-8")))
    yield Step(
        f"gate on a threshold just above the worst clip's LSE-C in {SCORES}: that clip fails",
        ("pytest", f"--lipsync-lse-c-min={threshold}"),
        1,
        proof="lse_c_min",
    )
    yield Step(
        "gate on pyproject.toml's thresholds: every clip passes, its scores replayed from pytest's cache",
        ("pytest",),
        0,
    )
    yield Step(
        "accept these numbers as the baseline",
        ("pytest", "--lipsync-update-baseline"),
        0,
        proof=f"{BASELINE} written",
        change=Change(f'# in pyproject.toml, add to [tool.lipsync]:  baseline = "{BASELINE}"', _add_baseline),
    )
    yield Step(
        "a regression: the late clip copied over a good one fails a [tool.lipsync.regression] rule",
        ("pytest",),
        1,
        proof="regression lse_d",
        change=Change(f"$ cp {WORSE} {GOOD}", _copy_worse_over_good),
    )


def just_above_worst(report: Mapping[str, Any]) -> str:
    """The lowest LSE-C of a results document, rounded up to the next tenth strictly above it."""
    worst = min(float(video["metrics"]["lse_c"]) for video in report["videos"])
    return f"{math.floor(round(worst * 10, 6) + 1) / 10:.1f}"


def check(step: Step, code: int, output: str) -> str | None:
    """Why the step did not do what it should, or None when it did."""
    if code != step.expected:
        return f"exited {code}, expected {step.expected}"
    if step.proof not in output:
        return f"{'failed' if code else 'passed'}, but its output does not show {step.proof!r}"
    return None


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment less what would change the commands; output unbuffered, to stream it."""
    kept = {name: value for name, value in environ.items() if not name.startswith(_CALLERS_VARIABLES)}
    return {**kept, "PYTHONUNBUFFERED": "1"}


def _run(command: tuple[str, ...], project: Path, environment: Mapping[str, str]) -> tuple[int, str]:
    """Run ``command`` in ``project`` with this Python, echoing its output as it comes; (exit code, output)."""
    program, *arguments = command
    argv = [sys.executable, *_PROGRAMS[program], *arguments]
    lines = []
    with subprocess.Popen(
        argv,
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            _say(line.rstrip("\n"))
    return process.returncode, "".join(lines)


def _say(line: str) -> None:
    print(line, flush=True)
