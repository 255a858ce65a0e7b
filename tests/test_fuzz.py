"""Fuzzing: mutated tiny clips must each give a score or a typed error, in time, without killing the process.

Mutations (see ``tests.fuzzing``): bit flips, truncations, another clip's header spliced in, bytes inserted
or deleted, over an MPEG-4/AVI, an H.264+AAC/MP4 and an MJPEG/Matroska clip. A mutated clip that still
scores is fine (it is a valid video), and so is ``timeout`` (the cases run with ``timeout = 15`` s, see
``tests.fuzzing``); a finding is an exception escaping ``Scorer.score``, a kind that is not a
:class:`VideoError` kind, a case that takes longer than ``CASE_SECONDS``, or the scoring process
dying (a segfault or an abort in a decoder). The cases run in one child process; when it dies or hangs the
case is recorded and a new child goes on from the next one, so one run lists every finding.

CI runs ``LIPSYNC_FUZZ_CASES`` (default 200) cases from ``LIPSYNC_FUZZ_SEED`` (default 0); set them for a
longer hunt, e.g. ``LIPSYNC_FUZZ_CASES=5000 LIPSYNC_FUZZ_SEED=7 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_lipsync.config.resolution import video_error_kinds
from tests.fuzzing import write_bases

pytestmark = pytest.mark.slow  # hundreds of mutated clips scored in child processes

CASES = int(os.environ.get("LIPSYNC_FUZZ_CASES", "200"))
SEED = int(os.environ.get("LIPSYNC_FUZZ_SEED", "0"))
CASE_SECONDS = 60.0  # per case, and for the child to load the model: far above any case's time on a slow runner
ROOT = Path(__file__).parents[1]


@dataclass
class Run:
    """What the children reported: the outcome of each case, and the findings."""

    outcomes: dict[int, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)


Command = Callable[[int], list[str]]


def fuzz_command(weights: Path, folder: Path) -> Command:
    """The child scoring cases from a first one to ``CASES``."""
    return lambda first: [
        sys.executable,
        "-m",
        "tests.fuzzing",
        str(weights),
        str(folder),
        str(SEED),
        str(first),
        str(CASES),
    ]


def run_cases(command: Command, cases: int, seconds: float) -> Run:
    """Every case, in children started again after each one that dies or hangs."""
    run = Run()
    first: int | None = 0
    while first is not None:
        stopped = run_child(command(first), first, cases, seconds, run)
        first = None if stopped is None else stopped + 1
    return run


def run_child(command: list[str], first: int, cases: int, seconds: float, run: Run) -> int | None:
    """Run cases from ``first`` in one child; the case it stopped on (dead or hung), or ``None`` when done."""
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(child, lines), daemon=True).start()
    expected = first
    try:
        while expected < cases:
            try:
                line = lines.get(timeout=seconds)
            except queue.Empty:
                run.findings.append(f"case {expected}: no answer within {seconds:g} s")
                return expected
            if not line:
                run.findings.append(f"case {expected}: the scoring process died (exit code {child.wait()})")
                return expected
            report = json.loads(line)
            if "case" in report:
                expected = report["case"] + 1
                run.outcomes[report["case"]] = report["outcome"]
                if report["outcome"] not in video_error_kinds() | {"ok"}:
                    run.findings.append(f"case {report['case']} ({report['what']}): {report['outcome']}")
        return None
    finally:
        child.kill()
        child.wait()


def _pump(child: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """The child's lines, then "" at its end: read on a thread so that the test can wait with a time limit."""
    assert child.stdout is not None
    for line in child.stdout:
        lines.put(line)
    lines.put("")


def test_mutated_clips_give_a_score_or_a_typed_error(syncnet_weights: Path, tmp_path: Path) -> None:
    write_bases(tmp_path)
    run = run_cases(fuzz_command(syncnet_weights, tmp_path), CASES, CASE_SECONDS)
    assert not run.findings, f"seed {SEED}: " + "; ".join(run.findings)
    assert len(run.outcomes) == CASES
    # The mutations reach past the container: some clips still score, some fail inside the decoder.
    assert {"ok", "decode_error", "unreadable"} <= set(run.outcomes.values())


# A child that aborts on case 1, raises a stray kind on case 2 and hangs on case 3, as a broken decoder might.
_MISBEHAVING = """
import json, os, sys, time

first = int(sys.argv[1])
for case in range(first, 5):
    if case == 1:
        os.abort()
    if case == 3:
        time.sleep(60)
    outcome = "unhandled KeyError: 'x'" if case == 2 else "ok"
    print(json.dumps({"case": case, "what": "a test", "outcome": outcome}), flush=True)
"""


def test_the_harness_records_deaths_hangs_and_stray_exceptions_and_goes_on() -> None:
    run = run_cases(lambda first: [sys.executable, "-c", _MISBEHAVING, str(first)], 5, 2.0)
    assert run.outcomes == {0: "ok", 2: "unhandled KeyError: 'x'", 4: "ok"}
    assert run.findings == [
        f"case 1: the scoring process died (exit code {-signal.SIGABRT})",
        "case 2 (a test): unhandled KeyError: 'x'",
        "case 3: no answer within 2 s",
    ]
