"""One benchmark run in a fresh process: one clip, one protocol, one variant (or the S3FD batching check, or
the frame metrics of one clip).

Peak RSS cannot be reset inside a process, so every configuration gets its own (``memory.peak_rss_mib``).
The driver writes a :class:`Job` as JSON and runs ``python -m pytest_lipsync.bench.child --one JOB --out OUT``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_lipsync.bench.memory import peak_rss_mib
from pytest_lipsync.bench.models import BenchWeights, CountingDetector
from pytest_lipsync.results import write_json_atomic
from pytest_lipsync.settings import Settings

if TYPE_CHECKING:
    from pytest_lipsync.bench.bare import PairedCalls
    from pytest_lipsync.faces.s3fd import S3FDDetector
    from pytest_lipsync.sync.lse import SyncScorer


@dataclass(frozen=True)
class Job:
    """Everything a child needs, as plain JSON data. ``kind``: ``score``, ``s3fd`` (batched vs one frame) or
    ``metrics`` (``metrics`` on the first ``metric_frames`` frames, networks from ``metric_weights``)."""

    kind: str
    clip: str
    protocol: str
    variant: str
    changes: dict[str, Any]
    weights: BenchWeights
    markers: bool  # stand-in S3FD on a generated clip: track the drawn faces' marker boxes
    quality: bool  # PSNR/SSIM of the clip against itself: the metrics' full cost
    device: str
    min_track: int
    bare_calls: int | None
    single_frames: int
    metrics: tuple[str, ...] = ()
    metric_frames: int = 0
    metric_weights: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**{**data, "weights": BenchWeights(**data["weights"]), "metrics": tuple(data.get("metrics", ()))})

    def settings(self) -> Settings:
        base = Settings(
            protocol=self.protocol,  # type: ignore[arg-type]  # a str from JSON, one plan.check_protocols allowed
            device=self.device,
            syncnet_weights=self.weights.syncnet,
            s3fd_weights=self.weights.s3fd,
            offline=True,
            min_track=self.min_track,
        )
        return base.replace(**self.changes)


def run_job(job: Job) -> dict[str, Any]:
    runs = {"score": score_run, "s3fd": s3fd_run, "metrics": metrics_run}
    return runs[job.kind](job)


def metrics_run(job: Job) -> dict[str, Any]:
    """The frame metrics on the clip's first frames (``frame_metrics``), then peak RSS."""
    from pytest_lipsync.bench.frame_metrics import measure_metrics
    from pytest_lipsync.scoring.scorer import resolve_device

    measured = measure_metrics(job.clip, job.metrics, job.metric_frames, job.metric_weights, job.device)
    return {"rows": measured, "peak_rss_mib": peak_rss_mib(), "device": str(resolve_device(job.device)), **torch_info()}


def score_run(job: Job) -> dict[str, Any]:
    """The product path end to end (``Scorer.score``), each forward pass paired with a timed bare one, then
    peak RSS."""
    from pytest_lipsync.faces.s3fd import S3FDDetector
    from pytest_lipsync.scoring.scorer import Scorer

    settings = job.settings()
    scorer = Scorer(settings)
    # The detector is wrapped to count (and, with stand-in weights, to find the drawn faces), and the models'
    # calls to time the bare passes.
    sync = scorer.sync
    path = Path(job.clip)
    wrapped = scorer.wrap_detector(lambda inner: CountingDetector(inner, markers=job.markers))
    detector = wrapped if isinstance(wrapped, CountingDetector) else None
    # Without a detector plug-in (a benchmark names none) the scorer's detector is S3FD, the one with a network.
    s3fd = detector.inner if detector is not None and isinstance(detector.inner, S3FDDetector) else None
    _warm_up(sync, s3fd, path)
    paired = _pair(sync, s3fd, _pairing_stride(path, job.bare_calls))
    started = time.perf_counter()
    result = scorer.score(path, reference=path if job.quality else None)
    wall = time.perf_counter() - started
    peak = peak_rss_mib()
    stages = dict(result.timings)
    markers = 0.0 if detector is None else detector.harness_seconds
    for stage, seconds in (("detection", markers), *((stage, call.spent) for stage, call in paired)):
        if seconds:
            stages[stage] -= seconds
            wall -= seconds
    bare = {stage: sum(call.total() for name, call in paired if name == stage) for stage in ("detection", "syncnet")}
    return {
        "frames": result.frames,
        "audio_frames": result.audio_frames,
        "wall": wall,
        "stages": stages,
        "tracks": len(result.tracks),
        "windows": sum(track.windows for track in result.tracks),
        "detector_frames": 0 if detector is None else detector.frames,
        "detector_calls": 0 if detector is None else sum(detector.calls.values()),
        "metrics": {key: result.metrics[key] for key in ("lse_d", "lse_c", "offset") if key in result.metrics},
        "error": None if result.error is None else result.error.message,
        "bare": {
            "s3fd": bare["detection"],
            "s3fd_calls_timed": sum(call.timed_calls for name, call in paired if name == "detection"),
            "syncnet": bare["syncnet"],
        },
        "peak_rss_mib": peak,
        "device": str(scorer.device),
        **torch_info(),
        "settings": settings.result_settings(),
    }


def _pair(sync: SyncScorer, s3fd: S3FDDetector | None, every: int) -> list[tuple[str, PairedCalls]]:
    """Wrap the models' forward calls in :class:`PairedCalls`, each with the stage its time is counted in."""
    from pytest_lipsync.bench.bare import PairedCalls

    net = sync.net
    lip = PairedCalls(net.forward_lip_sequence, sync.device)
    aud = PairedCalls(net.forward_aud, sync.device)
    # Timing wrappers in place of the towers' methods; they take the tensor positionally, as the scorer passes it.
    net.forward_lip_sequence = lip  # type: ignore[method-assign,assignment]  # wrapper's parameter: x, not frames
    net.forward_aud = aud  # type: ignore[method-assign,assignment]  # wrapper's parameter: x, not mfcc
    paired = [("syncnet", lip), ("syncnet", aud)]
    if s3fd is not None:
        forward = PairedCalls(s3fd.net, s3fd.device, every)
        s3fd.net = forward  # type: ignore[assignment]  # a timing wrapper stands in for the network, only called
        paired.append(("detection", forward))
    return paired


def _pairing_stride(path: Path, bare_calls: int | None) -> int:
    """Pair a bare pass with every N-th S3FD call so that about ``bare_calls`` are timed (None: all)."""
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.scoring.pipeline import FRAME_BATCH

    if bare_calls is None:
        return 1
    calls = -(-(open_video(path).info.expected_frames or 0) // FRAME_BATCH)
    return max(1, calls // max(1, bare_calls))


def torch_info() -> dict[str, Any]:
    """What a quoted figure must name besides the machine: torch's version and its CPU threads."""
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def _warm_up(sync: SyncScorer, s3fd: S3FDDetector | None, path: Path) -> None:
    """One forward pass per model at the run's first shapes, untimed: first calls pick kernels and allocate."""
    from pytest_lipsync.bench.bare import s3fd_warm_up, syncnet_warm_up
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.scoring.pipeline import FRAME_BATCH
    from pytest_lipsync.sync.model import LIP_FRAMES

    info = open_video(path).info
    syncnet_warm_up(sync, min(sync.batch_size, max(1, (info.expected_frames or 0) - LIP_FRAMES)))
    if s3fd is not None:
        s3fd_warm_up(s3fd, (FRAME_BATCH, info.height, info.width))


def s3fd_run(job: Job) -> dict[str, Any]:
    """S3FD fp32 batched (the pipeline's batch) against one frame per call, on the clip's first frames."""
    import numpy as np

    from pytest_lipsync.bench.bare import detector_throughput
    from pytest_lipsync.faces.s3fd import S3FDDetector, load_s3fd
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.scoring.pipeline import FRAME_BATCH
    from pytest_lipsync.scoring.scorer import resolve_device

    device = resolve_device(job.device)
    batches, frames = [], 0
    for batch in open_video(job.clip).frames(FRAME_BATCH):
        batches.append(batch)
        frames += len(batch)
        if frames >= job.single_frames:
            break
    rgb = np.ascontiguousarray(np.concatenate(batches)[: job.single_frames, ..., ::-1])
    detector = S3FDDetector(load_s3fd(job.weights.s3fd, device), device)
    return detector_throughput(detector, rgb, FRAME_BATCH) | {"peak_rss_mib": peak_rss_mib()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=Path, required=True, help="the job, as JSON")
    parser.add_argument("--out", type=Path, required=True, help="where to write the measurements")
    args = parser.parse_args(argv)
    job = Job.from_dict(json.loads(args.one.read_text()))
    write_json_atomic(args.out, run_job(job))
    return 0


def job_json(job: Job) -> str:
    return json.dumps(asdict(job))


if __name__ == "__main__":
    sys.exit(main())
