"""What a gate item costs in pytest when its video is unscorable: allowed (xfail) against not allowed (failed).

    python benchmarks/bench_allowed.py                 # 2,000 videos, allowed, then not allowed
    python benchmarks/bench_allowed.py --videos 500

No video is decoded and no model is loaded: a temporary project lists N empty ``.mp4`` files, and its
``conftest.py`` serves their scores from a hand-written report (every video ``unreadable``), as
``lipsync gate`` does. So the time is pytest's and the plugin's per item: the verdict, the report, the
outcome. The project is run twice in fresh processes, once with ``allow = ["unreadable"]`` (every item
xfails) and once without (every item fails); the wall time of each run and per item is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_lipsync.results import Report, RunRecord, ScoreError, VideoScore

CONFTEST = """
import json
from pathlib import Path

from pytest_lipsync.plugin.hooks import gate_of
from pytest_lipsync.session.report import ReportScores
from pytest_lipsync.results import Report


def pytest_configure(config):
    report = Report.from_dict(json.loads(Path(__file__).with_name("report.json").read_text()))
    gate_of(config)._service = ReportScores(report, "report.json")
"""


def _project(root: Path, videos: int, allowed: bool) -> None:
    (root / "videos").mkdir(parents=True)
    scores = []
    for number in range(videos):
        path = root / "videos" / f"clip_{number:05}.mp4"
        path.touch()
        scores.append(
            VideoScore(path=path.as_posix(), error=ScoreError("unreadable", f"{path}: cannot be opened as a video"))
        )
    run = RunRecord("bench", {"protocol": "cropped", "fidelity": "clean"}, (), "cpu")
    (root / "report.json").write_text(json.dumps(Report(run, tuple(scores)).to_dict()))
    allow = 'allow = ["unreadable"]\n' if allowed else ""
    (root / "pyproject.toml").write_text(f'[tool.lipsync]\nvideos = "videos"\nprotocol = "cropped"\n{allow}')
    (root / "conftest.py").write_text(CONFTEST)


def _seconds(root: Path) -> tuple[float, str]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    args = parser.parse_args()
    for allowed in (True, False):
        with tempfile.TemporaryDirectory() as directory:
            _project(Path(directory), args.videos, allowed)
            seconds, outcome = _seconds(Path(directory))
        label = "allowed (xfail)" if allowed else "not allowed (failed)"
        print(
            f"{label:22} {args.videos} items: {seconds:7.1f} s, "
            f"{1000 * seconds / args.videos:6.1f} ms per item  [{outcome}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
