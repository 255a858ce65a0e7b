"""The pipeline protocol end to end (docs/protocol.md): frames -> scenes and faces -> tracks -> crops -> SyncNet.

Two passes over the video keep memory bounded in its length. Pass 1 decodes, cuts scenes and detects faces,
keeping only the boxes (40 bytes per face per frame). Tracking runs on the boxes. Pass 2 reads the frames
again up to the last tracked frame and crops every track in progress as the frames go by: in ``clean``
fidelity each crop goes straight into its track's SyncNet embedder (memory: one SyncNet batch of crops per
track in progress), in ``reference`` fidelity into its track's XVID file, which is read back and scored when
the track ends. Both passes decode on a background thread while the models work; when the models run on the
CPU, that thread yields to them (:func:`prefetch`'s ``background``).

In ``reference`` fidelity the frames are those the reference's stages read (docs/protocol.md), picked from the
source as its ``ffmpeg -r 25`` picks them (``frame_rule = "ffmpeg_r25"``, :mod:`pytest_lipsync.media.framerule`):
scene cuts see the MPEG-4 q2 video as OpenCV decodes it, detection and cropping its JPEG q2 frames, SyncNet the
crops after XVID and the 200 kb/s JPEG step, and the audio is the MP3 track decoded. Pass 1 keeps the JPEG frames on
disk (:class:`SpilledFrames`) so that pass 2 decodes them instead of replaying the chain.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, tee
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.errors import NoFaceTrackError, TooShortError
from pytest_lipsync.faces.crop import TrackCropper, audio_span
from pytest_lipsync.faces.scenes import Scene, SceneCutter
from pytest_lipsync.faces.tracking import RejectedTrack, Track, Tracking, build_tracks
from pytest_lipsync.media.decode import SAMPLES_PER_FRAME, batched
from pytest_lipsync.media.prefetch import prefetch
from pytest_lipsync.media.reencode import mp3_round_trip
from pytest_lipsync.media.spill import SpilledFrames
from pytest_lipsync.results import BoxStats, TrackScore
from pytest_lipsync.settings import Settings

if TYPE_CHECKING:
    import av.video.frame

    from pytest_lipsync.faces.detector import Detector
    from pytest_lipsync.media.decode import VideoSource
    from pytest_lipsync.media.reencode import XvidRoundTrip
    from pytest_lipsync.sync.distances import SyncCurve
    from pytest_lipsync.sync.lse import SyncScorer, Timings, TrackEmbedder

# Frames per batch in both passes, and per detector call: a 1080p frame is 6 MB, and S3FD's activations at
# 0.25 x 1080p take about 70 MB per frame.
FRAME_BATCH = 8
_NO_BOXES = np.zeros((0, 5))  # a frame the detector skipped (``detect_every``); shared, so read-only
_NO_BOXES.setflags(write=False)


@dataclass(frozen=True)
class PipelineResult:
    """Every kept track scored, in scene order, and the video's and the sound's lengths in 25 fps frames.

    ``geometry``: the same tracks' per-frame boxes and crop geometry (``lipsync visualize`` draws them), in
    the frames the pipeline read: in ``reference`` fidelity :func:`replay_shift` frames later than the video's.
    """

    tracks: tuple[TrackScore, ...]
    frames: int
    audio_frames: int
    geometry: tuple[Track, ...] = ()


@dataclass(frozen=True)
class Detections:
    """What pass 1 keeps: per-frame (K, 5) boxes, the scenes, and the frame size."""

    path: Path
    boxes: list[np.ndarray]
    scenes: list[Scene]
    height: int
    width: int


class FacePipeline:
    """Scene cuts, a detector, tracking, cropping and SyncNet for one :class:`Settings`; reusable across videos."""

    def __init__(self, detector: Detector, sync: SyncScorer, settings: Settings) -> None:
        settings.check_detect_every()
        self.detector = detector
        self.sync = sync
        self.settings = settings

    @property
    def reference(self) -> bool:
        return self.settings.fidelity == "reference"

    def score(self, source: VideoSource, timings: Timings) -> PipelineResult:
        """Score every face track of the video; raises :class:`NoFaceTrackError` when there is none."""
        clock = time.perf_counter()
        audio = source.audio(replay=mp3_round_trip if self.reference else None)
        timings.add("audio", clock)
        with SpilledFrames() if self.reference else contextlib.nullcontext() as kept:
            found, tracks = self.find_tracks(source, timings, kept)
            scored = self._score_tracks(source, found, tracks, audio, timings, kept)
        return PipelineResult(scored, len(found.boxes), len(audio) // SAMPLES_PER_FRAME, tracks)

    @property
    def _background(self) -> bool:
        """Whether decoding yields to the models: it does when they run on the CPU and take every core."""
        return self.sync.device.type == "cpu"

    def find_tracks(
        self, source: VideoSource, timings: Timings, kept: SpilledFrames | None = None
    ) -> tuple[Detections, tuple[Track, ...]]:
        """Pass 1 and tracking: the kept tracks, or :class:`NoFaceTrackError` saying why there is none."""
        found = self.detect(source, timings, kept)
        clock = time.perf_counter()
        tracking = self.track(found)
        timings.add("tracking", clock)
        if not tracking.tracks:
            raise no_face_track(found, tracking, self.settings)
        return found, tracking.tracks

    def detect(self, source: VideoSource, timings: Timings, kept: SpilledFrames | None = None) -> Detections:
        """Pass 1: scene cuts and detector boxes for every frame; of the frames themselves only what ``kept``
        stores (reference fidelity's JPEG bytes, for pass 2)."""
        cutter = SceneCutter(scene_threshold=self.settings.scene_threshold)
        boxes: list[np.ndarray] = []
        height = width = 0
        clock = time.perf_counter()
        batches = detection_batches(source, self.reference, kept)
        for scene_frames, frames in prefetch(batches, background=self._background):
            clock = timings.add("decode", clock)
            cutter.feed(scene_frames)
            clock = timings.add("scenes", clock)
            timings.count("frames", len(frames))
            boxes += self._detect_batch(frames, len(boxes))
            height, width = frames.shape[1:3]
            clock = timings.add("detection", clock)
            timings.count("faces", len(frames))
        scenes = cutter.finish()
        timings.add("scenes", clock)
        return Detections(source.path, boxes, scenes, height, width)

    def _detect_batch(self, frames: np.ndarray, first: int) -> list[np.ndarray]:
        """Boxes of a batch of BGR frames numbered from ``first``: the detector sees frames 0, N, 2N, ... of the
        video only (``detect_every`` = N); the frames between get no boxes, and tracking interpolates them."""
        every = self.settings.detect_every
        offset = -first % every
        boxes = [_NO_BOXES] * len(frames)
        picked = frames[offset::every]
        if len(picked):
            indices = np.arange(first + offset, first + len(frames), every)
            boxes[offset::every] = self.detector.detect(np.ascontiguousarray(picked[..., ::-1]), indices)
        return boxes

    def track(self, found: Detections) -> Tracking:
        settings = self.settings
        return build_tracks(
            found.boxes,
            found.scenes,
            min_track=settings.min_track,
            num_failed_det=settings.num_failed_det,
            min_face_size=settings.min_face_size,
            detect_every=settings.detect_every,
        )

    def _score_tracks(
        self,
        source: VideoSource,
        found: Detections,
        tracks: Sequence[Track],
        audio: np.ndarray,
        timings: Timings,
        kept: SpilledFrames | None,
    ) -> tuple[TrackScore, ...]:
        """Pass 2: crop the tracks in progress as the frames go by; score each one when it ends."""
        waiting = sorted(range(len(tracks)), key=lambda k: tracks[k].first_frame)
        running: dict[int, _TrackRun] = {}
        scores: dict[int, TrackScore] = {}
        stop = max(track.last_frame for track in tracks) + 1
        first = 0
        clock = time.perf_counter()
        try:
            batches = crop_batches(source, self.reference, stop, kept)
            for frames in prefetch(batches, background=self._background):
                clock = timings.add("decode", clock)
                end = first + len(frames)
                while waiting and tracks[waiting[0]].first_frame < end:
                    k = waiting.pop(0)
                    running[k] = _TrackRun(tracks[k], found, audio, self, timings)
                for k, run in list(running.items()):
                    run.add(frames, first)
                    if run.track.last_frame < end:
                        scores[k] = running.pop(k).finish()
                first = end
                clock = time.perf_counter()
        finally:
            for run in running.values():
                run.discard()
        return tuple(scores[k] for k in range(len(tracks)))


class _TrackRun:
    """One track during pass 2: its crop windows, its audio, and where its crops go."""

    def __init__(
        self, track: Track, found: Detections, audio: np.ndarray, pipeline: FacePipeline, timings: Timings
    ) -> None:
        from pytest_lipsync.media.reencode import XvidRoundTrip

        self.track = track
        self._path = found.path
        self._sync = pipeline.sync
        self._timings = timings
        start, stop = audio_span(track)
        self._audio = audio[start:stop]
        self._cropper = TrackCropper(track, found.height, found.width, crop_scale=pipeline.settings.crop_scale)
        self._xvid: XvidRoundTrip | None = XvidRoundTrip() if pipeline.reference else None
        self._embedder: TrackEmbedder | None = None if self._xvid else self._sync.embedder(self._audio, timings)

    def add(self, frames: np.ndarray, first_frame: int) -> None:
        clock = time.perf_counter()
        crops = self._cropper.crop(frames, first_frame)
        clock = self._timings.add("crop", clock)
        if self._xvid is not None:
            self._xvid.write(crops)
            self._timings.add("fidelity", clock)
        elif len(crops):
            assert self._embedder is not None  # without the XviD round trip there is an embedder (__init__)
            self._embedder.add(crops)

    def finish(self) -> TrackScore:
        from pytest_lipsync.sync.lse import TrackTooShort

        try:
            if self._xvid is not None:
                crops = batched(self._xvid.read_back(), self._sync.batch_size)
                curve, windows = self._sync.score_track(crops, self._audio, self._timings)
            else:
                assert self._embedder is not None  # without the XviD round trip there is an embedder (__init__)
                lip, aud = self._embedder.finish()
                curve, windows = self._sync.curve(lip, aud, self._timings)
        except TrackTooShort as exc:
            raise TooShortError(
                f"face track at frames {self.track.first_frame}-{self.track.last_frame} is too short to score: "
                f"{exc.frames} frames of crops and {exc.audio_frames} frames (40 ms each) of audio; SyncNet needs "
                "at least 6 of both",
                path=self._path,
                hint="Raise min_track so that short tracks are not kept",
                facts={"frames": exc.frames, "audio_frames": exc.audio_frames},
            ) from None
        return _track_score(self.track, curve, windows)

    def discard(self) -> None:
        if self._xvid is not None:
            self._xvid.discard()


def _track_score(track: Track, curve: SyncCurve, windows: int) -> TrackScore:
    widths, heights = track.boxes[:, 2] - track.boxes[:, 0], track.boxes[:, 3] - track.boxes[:, 1]
    boxes = BoxStats(track.detections, float(np.mean(widths)), float(np.mean(heights)))
    return curve.track_score(track.first_frame, track.last_frame, windows, boxes)


# ---------------------------------------------------------------- the frames each pass reads


def detection_batches(
    source: VideoSource, reference: bool, kept: SpilledFrames | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of (frames for scene cuts, frames for detection), BGR uint8 (B, H, W, 3); in reference fidelity
    ``kept`` stores the JPEG files detection reads."""
    if not reference:
        for batch in source.frames(FRAME_BATCH):
            yield batch, batch
        return
    video, copy = tee(_mpeg4_frames(source))
    scene_frames = batched((frame.to_ndarray(format="bgr24") for frame in video), FRAME_BATCH)
    yield from zip(scene_frames, batched(_jpeg_q2(copy, kept), FRAME_BATCH), strict=True)


def crop_batches(
    source: VideoSource, reference: bool, stop: int, kept: SpilledFrames | None = None
) -> Iterator[np.ndarray]:
    """Batches of the frames cropping reads, BGR uint8, up to frame ``stop`` (exclusive): pass 1's JPEG files
    when ``kept`` holds them all, else replayed from the video."""
    from pytest_lipsync.media.reencode import decode_jpeg

    if reference and kept is not None and kept.holds(stop):
        frames: Iterator[np.ndarray] = map(decode_jpeg, kept.read(stop))
    elif reference:
        frames = _jpeg_q2(_mpeg4_frames(source))
    else:
        frames = (frame.to_ndarray() for frame in source.decoded("bgr24"))
    return batched(islice(frames, stop), FRAME_BATCH)


def replay_shift(source: VideoSource, reference: bool) -> int:
    """How many frames later than the video's own frame the pipeline's frame of the same picture is numbered:
    the reference replay repeats the first frame where its MP3 priming left a gap; none in clean fidelity."""
    from pytest_lipsync.media.reencode import leading_repeats

    rate = source.info.audio_rate
    return leading_repeats(rate) if reference and rate else 0


def _mpeg4_frames(source: VideoSource) -> Iterator[av.video.frame.VideoFrame]:
    """The 25 fps frames the reference extracts from its ``video.avi``: the frames its ``ffmpeg -r 25`` keeps,
    through MPEG-4 q2 as the AVI holds them (once each), then repeated where the extraction fills the AVI's gaps;
    the first frame repeated where the MP3's priming left a gap."""
    from pytest_lipsync.media.framerule import extracted
    from pytest_lipsync.media.reencode import MPEG4_PIX_FMT, mpeg4_round_trip

    video, timeline = tee(source.avi_frames(MPEG4_PIX_FMT))
    replayed = mpeg4_round_trip(frame for frame, _ in video)
    frames = extracted(zip(replayed, (slot for _, slot in timeline), strict=True))
    first = next(frames, None)
    if first is not None:
        yield from [first] * (1 + replay_shift(source, reference=True))
        yield from frames


def _jpeg_q2(frames: Iterator[av.video.frame.VideoFrame], kept: SpilledFrames | None = None) -> Iterator[np.ndarray]:
    from pytest_lipsync.media.reencode import JPEG_PIX_FMT, decode_jpeg, jpeg_files

    files = jpeg_files((frame.reformat(format=JPEG_PIX_FMT) for frame in frames), qscale=2)
    return map(decode_jpeg, files if kept is None else kept.keep(files))


# ---------------------------------------------------------------- no usable track


def no_face_track(found: Detections, tracking: Tracking, settings: Settings) -> NoFaceTrackError:
    """The error for a video without a kept track: what was found, which limit rejected it, what to change."""
    frames = len(found.boxes)
    longest = tracking.longest_rejected
    facts = {
        "frames": frames,
        "frames_with_faces": sum(1 for boxes in found.boxes if len(boxes)),
        "scenes": len(found.scenes),
        "longest_track": None if longest is None else _track_facts(longest, found.scenes),
        "limits": {
            "min_track": settings.min_track,
            "min_face_size": settings.min_face_size,
            "num_failed_det": settings.num_failed_det,
            **({"detect_every": settings.detect_every} if settings.detect_every > 1 else {}),
        },
    }
    if longest is None:
        what = f"no face detected in any of its {frames} frames"
        hint = "Check that the video shows a face; with a detector plug-in, check what it returns"
    else:
        what, hint = _rejection(longest, _scene_length(longest, found.scenes), settings)
        what = f"no usable face track in its {frames} frames: the longest candidate track {what}"
    return NoFaceTrackError(what, path=found.path, hint=hint, facts=facts)


def _rejection(track: RejectedTrack, scene_length: int, settings: Settings) -> tuple[str, str]:
    found = f"has {track.detections} detections (frames {track.first_frame}-{track.last_frame})"
    if track.reason == "scene_length":
        return (
            f"{found} in a scene of {scene_length} frames, and scenes shorter than min_track = {settings.min_track} "
            "frames are skipped",
            f"For short clips lower the setting min_track below {scene_length}; for a false scene cut raise "
            "scene_threshold",
        )
    if track.reason == "min_track":
        every = settings.detect_every
        sampled = f" (detect_every = {every}: each detection counts {every} frames)" if every > 1 else ""
        return (
            f"{found}, and min_track = {settings.min_track} needs more than {settings.min_track}{sampled}",
            f"For short clips lower the setting min_track below {track.detections * every}",
        )
    return (
        f"{found} with a mean face size of {track.face_size:.1f} pixels, and min_face_size = "
        f"{settings.min_face_size:g} needs more",
        f"For small faces lower the setting min_face_size below {track.face_size:.1f}",
    )


def _track_facts(track: RejectedTrack, scenes: Sequence[Scene]) -> dict[str, object]:
    return {
        "first_frame": track.first_frame,
        "last_frame": track.last_frame,
        "detections": track.detections,
        "face_size": track.face_size,
        "scene_length": _scene_length(track, scenes),
        "rejected_by": track.reason,
    }


def _scene_length(track: RejectedTrack, scenes: Sequence[Scene]) -> int:
    return next(end - start for start, end in scenes if start <= track.first_frame < end)
