"""Splitting the videos of a gate or a dataset among jobs: ``--lipsync-shard i/n``, ``lipsync score --shard i/n``.

Every job of a matrix collects the same videos and keeps its own share, so the split must depend only on
what every job sees alike: the videos' keys and file sizes (not modification times, not the order a
directory lists). Scoring time grows with a video's length, and its size is a cheap, stable stand-in for
it. The split is greedy longest-processing-time: videos from the largest down (ties by key) each go to
the shard with the least bytes so far (ties to the lowest shard), which leaves no shard more than one
video's size above another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_lipsync.errors import ConfigError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based, as CI matrices count) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.match(text)
        index, count = (int(match.group(1)), int(match.group(2))) if match else (-1, 0)
        if index == 0 and count > 0:  # a job array's task id, which counts from 0
            raise ConfigError(
                f"shard is {text!r}: shards count from 1",
                hint='Write "i/n" with 1 <= i <= n; for a Slurm array starting at 0, '
                '$((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT, or "slurm"',
            )
        if not 1 <= index <= count:
            raise ConfigError(
                f"shard is {text!r}", hint='Write "i/n" with 1 <= i <= n, e.g. "2/4" for the second of four jobs'
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def assign(sizes: Mapping[str, int], count: int) -> dict[str, int]:
    """Video key -> shard index (1-based) for every video, by greedy longest-processing-time."""
    loads = [0] * count
    shards = {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        lightest = min(range(count), key=lambda n: (loads[n], n))
        loads[lightest] += sizes[key]
        shards[key] = lightest + 1
    return shards


def select(sizes: Mapping[str, int], shard: Shard) -> frozenset[str]:
    """The keys of the videos that ``shard`` scores."""
    return frozenset(key for key, index in assign(sizes, shard.count).items() if index == shard.index)


def slurm_shard(environ: Mapping[str, str]) -> Shard:
    """The shard of a Slurm job-array task: ``SLURM_ARRAY_TASK_ID`` counted from ``SLURM_ARRAY_TASK_MIN``
    (arrays often start at 0; shards count from 1) of ``SLURM_ARRAY_TASK_COUNT`` tasks.

    ``--array=0-3``: task ids 0..3, min 0, count 4 -> shards 1/4..4/4 (``id - min + 1``). An array with a
    step (``--array=0-6:2``) has ids that do not count up by one: it is refused rather than mis-split."""
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
    missing = [name for name in names if not environ.get(name, "").strip().isdigit()]
    if missing:
        raise ConfigError(
            f"'slurm' needs {', '.join(missing)} (not set, or not a number): this is not a Slurm array task",
            hint="Submit with sbatch --array=0-N, or give the shard as i/n",
        )
    task, count, first = (int(environ[name]) for name in names)
    step = environ.get("SLURM_ARRAY_TASK_STEP", "1").strip()
    if step not in ("", "1"):
        raise ConfigError(
            f"the Slurm array has step {step}: its task ids do not number shards 1..{count}",
            hint="Submit the array without a step (--array=0-N), or give the shard as i/n",
        )
    return Shard.parse(f"{task - first + 1}/{count}")
