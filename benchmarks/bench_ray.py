"""Ray's cost per video: ``lipsync score --executor ray`` on a local Ray instance against ``--workers N``.

    python benchmarks/bench_ray.py                       # 12 clips, 2 workers / 2 one-core actors
    python benchmarks/bench_ray.py --clips 24 --seconds 4 --workers 2 --rounds 3

Both sides score the same generated clips (224x224 face crops, cropped protocol, clean fidelity, stand-in
weights, CPU) with the same number of processes: ``--workers N`` local spawn processes, or N Ray actors of
``cores / N`` CPUs each on a Ray instance started here with every core. Each side loads its models once
per process, and that start-up is part of its wall time, as it is for a user. Ray's own start-up
(``ray.init``) is timed apart: a cluster pays it once, not per run. Rounds alternate the two sides so that
machine load affects both alike; medians are printed, and the overhead per video is
(Ray wall - local wall) / videos. Scores are checked to be identical on both sides.

Needs Ray (``pip install "pytest-lipsync[ray]"``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _score(folder: Path, weights: Path, out: Path, extra: list[str]) -> float:
    from pytest_lipsync.cli.app import main

    argv = ["score", str(folder), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline"]
    argv += ["--syncnet-weights", str(weights), "--json", str(out), "-q", *extra]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"lipsync score {' '.join(extra)} exited {code}")
    return wall


def _metrics(path: Path) -> list[tuple[str, dict[str, float]]]:
    return [(video["path"], video["metrics"]) for video in json.loads(path.read_text())["videos"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="local processes, and Ray actors")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ray

    from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
    from pytest_lipsync.synthetic.weights import standin_syncnet_file

    cores = os.cpu_count() or 1
    weights = standin_syncnet_file()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        folder = root / "clips"
        folder.mkdir()
        for n in range(args.clips):
            write_clip(folder / f"clip{n:03d}.mp4", ClipSpec(seconds=args.seconds, width=224, height=224, seed=n))
        started = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - started
        per_actor = str(max(1, cores // args.workers))
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        try:
            for _ in range(args.rounds):
                walls["local"].append(_score(folder, weights, root / "local.json", ["--workers", str(args.workers)]))
                walls["ray"].append(
                    _score(folder, weights, root / "ray.json", ["--executor", "ray", "--ray-cpus-per-actor", per_actor])
                )
        finally:
            ray.shutdown()
        same = _metrics(root / "local.json") == _metrics(root / "ray.json")
    local, remote = (statistics.median(walls[side]) for side in ("local", "ray"))
    print(f"{args.clips} clips of {args.seconds:g} s, 224x224, cropped/clean, stand-in weights, {cores} cores")
    print(f"python {sys.version.split()[0]}, ray {ray.__version__}, {args.rounds} rounds (median)")
    print(f"ray.init (once per cluster, not counted below): {init:.1f} s")
    print(f"--workers {args.workers}:            {local:6.1f} s  {args.clips / local * 3600:7.0f} videos/h")
    print(
        f"--executor ray ({args.workers} actors x {per_actor} CPU): {remote:6.1f} s  "
        f"{args.clips / remote * 3600:7.0f} videos/h"
    )
    print(f"Ray overhead per video: {(remote - local) / args.clips * 1000:+.0f} ms")
    print(f"identical scores: {same}")
    print("rounds:", {side: [round(wall, 1) for wall in values] for side, values in walls.items()})
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
