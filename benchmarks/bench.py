"""Speed and memory per stage against the bare models: the same as ``lipsync bench`` (see ``--help``).

python benchmarks/bench.py --preset quick
python benchmarks/bench.py --preset full --json bench.json --markdown bench.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_lipsync.cli.app import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
