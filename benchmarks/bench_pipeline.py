"""Speed of the pipeline protocol on the CPU, stage by stage, with STAND-IN weights (timings only).

    python benchmarks/bench_pipeline.py                     # 4 s clips at 720p and 1080p
    python benchmarks/bench_pipeline.py --seconds 10        # the 10 s clips the issue names
    python benchmarks/bench_pipeline.py --sizes 720p --json bench_pipeline.json

The clips are generated here (a talking face ringed in the marker colour, H.264). The weights are
deterministic stand-ins for S3FD and SyncNet: **the lip-sync numbers they give mean nothing**, so none are
printed; stand-in S3FD cannot find the face either, so the end-to-end runs use a benchmark-only detector that
runs S3FD on every frame (full cost, boxes discarded) and returns the marker boxes, which gives real tracks.

Three measurements per clip:

- ``isolated``: each stage alone, in series, on the decoded stream (a stage's time is the time of decoding
  plus the stage, minus decoding alone), including each lossy replay of ``fidelity = "reference"``;
- ``s3fd``: the detector batched (8 frames per call) against one frame per call, fp32 both, same frames;
- ``end to end``: ``FacePipeline.score`` in both fidelities, with its own stage timings (decoding runs on a
  background thread, so ``decode`` there is only the time the models waited for frames) and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.faces import MarkerDetector, standin_s3fd_state_dict
from fixtures.media import ClipSpec, write_clip
from fixtures.weights import standin_syncnet_file
from pytest_lipsync.faces.crop import TrackCropper
from pytest_lipsync.faces.pipeline import FRAME_BATCH, FacePipeline
from pytest_lipsync.faces.s3fd import S3FDDetector, load_s3fd
from pytest_lipsync.faces.scenes import SceneCutter
from pytest_lipsync.faces.tracking import build_tracks
from pytest_lipsync.media.decode import VideoSource, batched, open_video
from pytest_lipsync.media.reencode import JPEG_PIX_FMT, MPEG4_PIX_FMT, XvidRoundTrip, jpeg_round_trip, mpeg4_round_trip
from pytest_lipsync.settings import Settings
from pytest_lipsync.sync.model import load_syncnet
from pytest_lipsync.sync.scorer import SyncScorer, Timings

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SINGLE_FRAMES = 16  # frames for the batched-versus-single S3FD comparison


class S3FDThenMarkers:
    """Benchmark-only detector: S3FD's full cost on every frame, then the marker boxes (stand-in S3FD finds no face)."""

    def __init__(self, s3fd: S3FDDetector) -> None:
        self.s3fd = s3fd
        self.markers = MarkerDetector()

    def detect(self, frames: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
        self.s3fd.detect(frames, indices)
        return self.markers.detect(frames, indices)


def seconds(run: Callable[[], object]) -> float:
    clock = time.perf_counter()
    run()
    return time.perf_counter() - clock


def drain(items: Iterable[object]) -> None:
    for _ in items:
        pass


def isolated(source: VideoSource, s3fd: S3FDDetector, sync: SyncScorer, settings: Settings) -> dict[str, float]:
    """Each stage alone, in series, on frames decoded once into memory; a replay's cost is (chain with it) - (without)."""
    batches: list[np.ndarray] = []
    times = {"decode": seconds(lambda: batches.extend(source.frames(FRAME_BATCH)))}
    times["scenes"] = seconds(lambda: _cut(batches))
    times["detection (S3FD)"] = seconds(lambda: [s3fd.detect(b[..., ::-1], np.arange(len(b))) for b in batches])
    boxes = [box for batch in batches for box in MarkerDetector().detect(batch, np.arange(len(batch)))]
    times["tracking"] = seconds(lambda: build_tracks(boxes, [(0, len(boxes))], min_track=settings.min_track))
    (track,) = build_tracks(boxes, [(0, len(boxes))], min_track=settings.min_track).tracks
    cropper = TrackCropper(track, source.info.height, source.info.width)
    crops: list[np.ndarray] = []
    times["crop"] = seconds(lambda: crops.extend(_crops(cropper, batches)))
    batches.clear()
    audio = source.audio()
    times["syncnet"] = seconds(lambda: sync.score_track(batched(iter(crops), sync.batch_size), audio, Timings()))
    yuv = seconds(lambda: drain(source.decoded(MPEG4_PIX_FMT)))
    mpeg4 = seconds(lambda: drain(mpeg4_round_trip(source.decoded(MPEG4_PIX_FMT))))
    jpeg = seconds(lambda: drain(jpeg_round_trip(f.reformat(format=JPEG_PIX_FMT) for f in mpeg4_round_trip(source.decoded(MPEG4_PIX_FMT)))))
    times["replay: mpeg4 q2 video"] = mpeg4 - yuv
    times["replay: jpeg q2 frames"] = jpeg - mpeg4
    times["replay: mp3 audio"] = seconds(lambda: source.audio(mp3=True)) - seconds(source.audio)
    times["replay: xvid + jpeg 200k"] = seconds(lambda: _xvid(crops))
    return times


def _cut(batches: list[np.ndarray]) -> None:
    cutter = SceneCutter()
    for batch in batches:
        cutter.feed(batch)
    cutter.finish()


def _crops(cropper: TrackCropper, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    first = 0
    for batch in batches:
        yield from cropper.crop(batch, first)
        first += len(batch)


def _xvid(crops: list[np.ndarray]) -> None:
    replay = XvidRoundTrip()
    replay.write(np.stack(crops))
    drain(replay.read_back())


def s3fd_throughput(source: VideoSource, s3fd: S3FDDetector) -> dict[str, float]:
    """Frames per second of S3FD batched (FRAME_BATCH per call) and one frame per call, fp32, same frames.

    Both shapes are warmed up first (oneDNN picks kernels per shape), and each side keeps its best of two runs.
    """
    frames = np.concatenate(list(source.frames(FRAME_BATCH)))[:SINGLE_FRAMES, ..., ::-1]

    def batched_calls() -> None:
        for k in range(0, len(frames), FRAME_BATCH):
            s3fd.detect(frames[k : k + FRAME_BATCH], np.arange(k, k + FRAME_BATCH))

    def single_calls() -> None:
        for k in range(len(frames)):
            s3fd.detect(frames[k : k + 1], [k])

    s3fd.detect(frames[:FRAME_BATCH], np.arange(FRAME_BATCH))
    s3fd.detect(frames[:1], [0])
    batched_time = min(seconds(batched_calls) for _ in range(2))
    single_time = min(seconds(single_calls) for _ in range(2))
    return {"batched_fps": len(frames) / batched_time, "single_fps": len(frames) / single_time}


def end_to_end(path: Path, detector: S3FDThenMarkers, sync: SyncScorer, settings: Settings) -> dict[str, object]:
    pipeline = FacePipeline(detector, sync, settings)  # type: ignore[arg-type]
    timings = Timings()
    clock = time.perf_counter()
    result = pipeline.score(open_video(path), timings)
    total = time.perf_counter() - clock
    return {
        "total": total,
        "fps": result.frames / total,
        "tracks": len(result.tracks),
        "stages": timings.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4; the issue's figure is 10)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["720p", "1080p"])
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    s3fd_path = workdir / "standin_sfd_face.pth"
    torch.save(standin_s3fd_state_dict(), s3fd_path)
    s3fd = S3FDDetector(load_s3fd(s3fd_path, "cpu"), "cpu")
    sync = SyncScorer(load_syncnet_file(standin_syncnet_file()), torch.device("cpu"))
    print(f"STAND-IN weights: timings only, never lip-sync numbers. torch threads: {torch.get_num_threads()}")
    clips = {size: write_clip(workdir / f"{size}.mp4", _spec(size, args.seconds)) for size in args.sizes}
    frames = round(args.seconds * 25)
    settings = Settings(device="cpu", min_track=min(100, frames - 2))  # short clips: one track all the same
    report: dict[str, dict[str, object]] = {size: {"frames": frames} for size in args.sizes}
    for size, clip in clips.items():  # first, so that the peak RSS is the pipeline's own
        s3fd.detect(next(open_video(clip).frames(FRAME_BATCH)), np.arange(FRAME_BATCH))  # warm-up for this size
        report[size]["end_to_end"] = {
            fidelity: end_to_end(clip, S3FDThenMarkers(s3fd), sync, settings.replace(fidelity=fidelity))
            for fidelity in ("clean", "reference")
        }
    for size, clip in clips.items():
        source = open_video(clip)
        report[size]["s3fd"] = s3fd_throughput(source, s3fd)
        report[size]["isolated"] = isolated(source, s3fd, sync, settings)
        print_entry(size, report[size])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _spec(size: str, seconds: float) -> ClipSpec:
    width, height = SIZES[size]
    return ClipSpec(seconds=seconds, width=width, height=height, marker=True)


def load_syncnet_file(path: Path) -> torch.nn.Module:
    from pytest_lipsync.models.registry import SYNCNET
    from pytest_lipsync.models.resolve import locate_weights

    return load_syncnet(locate_weights(SYNCNET, path), torch.device("cpu"))  # type: ignore[arg-type]


def print_entry(size: str, entry: dict) -> None:  # type: ignore[type-arg]
    frames = entry["frames"]
    print(f"\n{size}, {frames} frames ({frames / 25:g} s)")
    isolated_times = entry["isolated"]
    model = isolated_times["detection (S3FD)"] + isolated_times["syncnet"]
    total = sum(isolated_times.values())
    print("  isolated stages          seconds   frames/s   share")
    for stage, value in isolated_times.items():
        print(f"  {stage:<24} {value:8.2f} {frames / max(value, 1e-9):10.1f} {100 * value / total:6.1f}%")
    print(f"  {'non-model stages':<24} {total - model:8.2f} {'':10} {100 * (total - model) / total:6.1f}%")
    s3fd = entry["s3fd"]
    ratio = s3fd["batched_fps"] / s3fd["single_fps"]
    print(f"  S3FD fp32: batched {s3fd['batched_fps']:.2f} frames/s, one at a time {s3fd['single_fps']:.2f} frames/s ({ratio:.2f}x)")
    for fidelity, run in entry["end_to_end"].items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in run["stages"].items())
        print(
            f"  end to end, {fidelity}: {run['total']:.2f} s ({run['fps']:.2f} frames/s, {run['tracks']} track), "
            f"peak RSS {run['peak_rss_mb']:.0f} MB; {stages}"
        )


if __name__ == "__main__":
    sys.exit(main())
