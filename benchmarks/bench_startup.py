"""pytest start-up time with and without the pytest-lipsync plugin (the plugin must cost < 50 ms).

    python benchmarks/bench_startup.py               # 15 runs each, interleaved; prints medians
    python benchmarks/bench_startup.py --runs 30

Each run is a fresh ``python -m pytest --collect-only -q`` in an empty temporary project with one trivial
test, once with the plugin loaded by its entry point and once with ``-p no:lipsync``. Runs alternate so that
machine load affects both sides alike; the medians and their difference are printed. Also checks that the
plugin's import pulled in none of torch, cv2, av or scenedetect.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "cv2", "av", "scenedetect")
LIMIT_MS = 50.0


def _run(project: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=project,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - started) * 1000


def _heavy_imports() -> list[str]:
    code = f"import sys, pytest_lipsync.plugin.hooks; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        _run(project)  # warm the file cache and bytecode
        with_plugin, without = [], []
        for _ in range(args.runs):
            with_plugin.append(_run(project))
            without.append(_run(project, "-p", "no:lipsync"))
    difference = statistics.median(with_plugin) - statistics.median(without)
    print(f"with plugin:    median {statistics.median(with_plugin):7.1f} ms over {args.runs} runs")
    print(f"without plugin: median {statistics.median(without):7.1f} ms over {args.runs} runs")
    print(f"difference:     {difference:7.1f} ms (limit {LIMIT_MS:.0f} ms)")
    heavy = _heavy_imports()
    print(f"heavy modules imported by the plugin: {', '.join(heavy) or 'none'}")
    return 0 if difference < LIMIT_MS and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
