"""Runs every configuration in its own process and turns the raw measurements into the report's numbers.

Derived numbers, per run: per stage seconds, frames per second (``frames / seconds``), real-time factor
(``seconds / clip duration``: below 1 is faster than real time) and share of the wall time (the rest is
``other``); the overhead ratio ``lse_seconds / bare``, where ``lse_seconds = wall - quality`` is LSE's end to
end and ``bare`` the S3FD and SyncNet forward passes alone on the same work; and against the baseline variant
on the same clip and protocol, the speed-up (of ``lse_seconds``) and the change of LSE-D, LSE-C and offset.
The frame metrics (LPIPS, FID, CPBD) run in a process of their own per clip; their rows are reported as
measured (``frame_metrics``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_lipsync.bench.child import Job, job_json
from pytest_lipsync.bench.clips import BenchClip
from pytest_lipsync.bench.models import STANDIN_NOTICE, BenchWeights
from pytest_lipsync.bench.plan import BASELINE, Variant, applies
from pytest_lipsync.errors import LipsyncError

FPS = 25.0
# Display stage -> the Timings keys it sums; keys not named here (a stage added later) get their own row.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ("audio", "decode")),
    ("scene cuts", ("scenes",)),
    ("detection", ("detection",)),
    ("tracking/crop", ("tracking", "crop")),
    ("fidelity replays", ("fidelity",)),
    ("SyncNet", ("syncnet",)),
    ("distances", ("distances",)),
    ("quality", ("quality",)),
)
OTHER = "other"


class BenchError(LipsyncError):
    """A benchmark child process failed (its own error output is quoted)."""

    kind = "bench"


@dataclass(frozen=True)
class BenchPlan:
    clips: tuple[BenchClip, ...]
    protocols: tuple[str, ...]
    variants: tuple[Variant, ...]
    weights: BenchWeights
    device: str
    quality: bool
    bare_calls: int | None
    single_frames: int
    workdir: Path
    metrics: tuple[str, ...] = ()  # frame metrics to time (frame_metrics.METRICS)
    metric_frames: int = 0
    metric_weights: dict[str, str] = field(default_factory=dict)
    lse: bool = True  # False: the frame metrics only, no LSE run and no S3FD check


def score_jobs(plan: BenchPlan) -> Iterator[tuple[BenchClip, Job]]:
    from pytest_lipsync.settings import Settings

    for clip in plan.clips if plan.lse else ():
        # A generated clip is one scene as long as the clip: keep it as one track however short it is. Given
        # clips are scored as they are.
        min_track = Settings().min_track
        if clip.generated:
            min_track = max(1, min(min_track, clip.frames - 2))
        for protocol in plan.protocols:
            for variant in (variant for variant in plan.variants if applies(variant, protocol)):
                yield (
                    clip,
                    Job(
                        kind="score",
                        clip=str(clip.path),
                        protocol=protocol,
                        variant=variant.name,
                        changes=variant.as_dict(),
                        weights=plan.weights,
                        markers=plan.weights.standin and clip.generated,
                        quality=plan.quality,
                        device=plan.device,
                        min_track=min_track,
                        bare_calls=plan.bare_calls,
                        single_frames=plan.single_frames,
                    ),
                )


def s3fd_jobs(plan: BenchPlan) -> Iterator[tuple[BenchClip, Job]]:
    """One batched-against-single check per frame size, on the first clip of that size."""
    if not plan.lse or "pipeline" not in plan.protocols or plan.single_frames <= 0:
        return
    sizes = {(clip.width, clip.height): clip for clip in reversed(plan.clips)}
    for clip in sorted(sizes.values(), key=lambda c: c.width * c.height):
        yield clip, _check_job(plan, clip, "s3fd", protocol="pipeline")


def metric_jobs(plan: BenchPlan) -> Iterator[tuple[BenchClip, Job]]:
    """One run of every frame metric per clip."""
    if not plan.metrics:
        return
    for clip in plan.clips:
        yield clip, _check_job(plan, clip, "metrics", protocol="-", bare_calls=None, single_frames=0,
                               metrics=plan.metrics, metric_frames=plan.metric_frames,
                               metric_weights=plan.metric_weights)  # fmt: skip


def _check_job(plan: BenchPlan, clip: BenchClip, kind: str, **fields: Any) -> Job:
    """A job outside the (clip, protocol, variant) matrix: the baseline settings, no markers, no quality."""
    base: dict[str, Any] = {"protocol": "pipeline", "bare_calls": plan.bare_calls, "single_frames": plan.single_frames}
    return Job(kind=kind, clip=str(clip.path), variant=BASELINE, changes={}, weights=plan.weights, markers=False,
               quality=False, device=plan.device, min_track=1, **(base | fields))  # fmt: skip


def run_child(job: Job, workdir: Path, number: int) -> dict[str, Any]:
    """``python -m pytest_lipsync.bench.child`` on ``job``: a fresh process, so that its peak RSS is its own."""
    import json

    job_file, out_file = workdir / f"job-{number}.json", workdir / f"result-{number}.json"
    job_file.write_text(job_json(job))
    command = [sys.executable, "-m", "pytest_lipsync.bench.child", "--one", str(job_file), "--out", str(out_file)]
    done = subprocess.run(command, capture_output=True, text=True, env=_child_environment())
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BenchError(
            f"benchmark run {number} ({Path(job.clip).name}, {job.protocol}, {job.variant}) failed:\n{tail}"
        )
    return json.loads(out_file.read_text())


def _child_environment() -> dict[str, str]:
    """This environment, with this copy of the package first on the path: a child measures the code its parent
    runs, installed or not (``python benchmarks/bench.py`` from a checkout)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, path]) if path else root}


def run_plan(plan: BenchPlan, progress: Callable[[str], None], command: Sequence[str] = ()) -> dict[str, Any]:
    """Every run, one process each, then the derived numbers as one JSON-ready document. A run whose process
    fails is listed under ``failed`` with its error output; the others still run and are reported."""
    runs: list[dict[str, Any]] = []
    failed: list[str] = []
    load_before = os.getloadavg()[0]
    jobs = [*score_jobs(plan), *s3fd_jobs(plan), *metric_jobs(plan)]
    for number, (clip, job) in enumerate(jobs, 1):
        progress(f"[{number}/{len(jobs)}] {clip.name} {job.kind} {job.protocol} {job.variant}")
        try:
            raw = run_child(job, plan.workdir, number)
        except BenchError as exc:
            progress(str(exc))
            failed.append(exc.what)
            continue
        runs.append({"clip": _clip_record(clip), "job": job, "raw": raw})
    scored = [derive_run(run["clip"], run["job"], run["raw"]) for run in runs if run["job"].kind == "score"]
    compare_with_baseline(scored, plan.weights.standin)
    return {
        "notice": STANDIN_NOTICE if plan.weights.standin else None,
        "weights": asdict(plan.weights),
        "machine": machine(plan.device) | {"load_average": [load_before, os.getloadavg()[0]]},
        "command": list(command),
        "runs": scored,
        "s3fd_batching": [
            {"clip": run["clip"]["name"], "width": run["clip"]["width"], "height": run["clip"]["height"], **run["raw"]}
            for run in runs
            if run["job"].kind == "s3fd"
        ],
        "memory": memory_growth(scored),
        "frame_metrics": [
            {
                "clip": run["clip"]["name"],
                "device": run["raw"]["device"],
                "threads": run["raw"]["threads"],
                "torch": run["raw"]["torch"],
                "peak_rss_mib": run["raw"]["peak_rss_mib"],
                **row,
            }
            for run in runs
            if run["job"].kind == "metrics"
            for row in run["raw"]["rows"]
        ],
        "failed": failed,
    }


def _clip_record(clip: BenchClip) -> dict[str, Any]:
    return {"name": clip.name, "path": str(clip.path), "width": clip.width, "height": clip.height,
            "seconds": clip.seconds, "faces": clip.faces, "generated": clip.generated}  # fmt: skip


def machine(device: str) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "device": device,
    }


def derive_run(clip: dict[str, Any], job: Job, raw: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers for one run; see the module docstring for each formula."""
    frames = raw["frames"]
    # The clip's own length: reference fidelity decodes a few more frames (the MP3 priming's repeats).
    duration = clip["seconds"] or frames / FPS
    wall = raw["wall"]
    stages = stage_rows(raw["stages"], wall, frames, duration)
    lse_seconds = wall - sum(row["seconds"] for row in stages if row["stage"] == "quality")
    bare = raw["bare"]["s3fd"] + raw["bare"]["syncnet"]
    return {
        "clip": clip,
        "protocol": job.protocol,
        "variant": job.variant,
        "changes": job.changes,
        "settings": raw["settings"],
        "frames": frames,
        "duration": duration,
        "wall": wall,
        "fps": _ratio(frames, wall),
        "rtf": _ratio(wall, duration),
        "peak_rss_mib": raw["peak_rss_mib"],
        "stages": stages,
        "bare": {**raw["bare"], "total": bare, "s3fd_calls": raw["detector_calls"]},
        "lse_seconds": lse_seconds,
        "overhead_ratio": _ratio(lse_seconds, bare),
        "tracks": raw["tracks"],
        "windows": raw["windows"],
        "detector_frames": raw["detector_frames"],
        "threads": raw["threads"],
        "torch": raw["torch"],
        "device": raw["device"],
        "error": raw["error"],
        "metrics": raw["metrics"],
    }


def stage_rows(timings: dict[str, float], wall: float, frames: int, duration: float) -> list[dict[str, Any]]:
    named = {key for _, keys in STAGES for key in keys}
    groups = [*STAGES, *((key, (key,)) for key in timings if key not in named)]
    rows = []
    for stage, keys in groups:
        present = [timings[key] for key in keys if key in timings]
        if present:
            rows.append((stage, sum(present)))
    rows.append((OTHER, wall - sum(seconds for _, seconds in rows)))
    return [
        {
            "stage": stage,
            "seconds": seconds,
            "fps": _ratio(frames, seconds),
            "rtf": _ratio(seconds, duration),
            "share": _ratio(seconds, wall),
        }
        for stage, seconds in rows
    ]


def compare_with_baseline(runs: list[dict[str, Any]], standin: bool) -> None:
    """Adds ``vs_baseline`` to every variant run; with stand-in weights the LSE values themselves are dropped."""
    baselines = {(run["clip"]["name"], run["protocol"]): run for run in runs if run["variant"] == BASELINE}
    for run in runs:
        base = baselines.get((run["clip"]["name"], run["protocol"]))
        if run["variant"] != BASELINE and base is not None:
            run["vs_baseline"] = {
                "speedup": _ratio(base["lse_seconds"], run["lse_seconds"]),
                **{f"{key}_change": run["metrics"][key] - base["metrics"][key]
                   for key in ("lse_d", "lse_c", "offset") if key in run["metrics"] and key in base["metrics"]},
            }  # fmt: skip
    for run in runs:
        if standin:
            run.pop("metrics")


def memory_growth(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak RSS of the longest generated clip over the shortest, same size, faces, protocol and variant."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        clip = run["clip"]
        if clip["generated"]:
            key = (clip["width"], clip["height"], clip["faces"], run["protocol"], run["variant"])
            groups.setdefault(key, []).append(run)
    rows = []
    for (width, height, faces, protocol, variant), members in groups.items():
        members.sort(key=lambda run: run["clip"]["seconds"])
        short, long = members[0], members[-1]
        if long["clip"]["seconds"] > short["clip"]["seconds"]:
            rows.append({
                "width": width, "height": height, "faces": faces, "protocol": protocol, "variant": variant,
                "short_seconds": short["clip"]["seconds"], "long_seconds": long["clip"]["seconds"],
                "short_peak_rss_mib": short["peak_rss_mib"], "long_peak_rss_mib": long["peak_rss_mib"],
                "ratio": _ratio(long["peak_rss_mib"], short["peak_rss_mib"]),
            })  # fmt: skip
    return rows


def _ratio(numerator: float, denominator: float) -> float | None:
    """``None`` (JSON null) where the denominator is zero: a stage that took no time has no frame rate."""
    return numerator / denominator if denominator > 0 else None
