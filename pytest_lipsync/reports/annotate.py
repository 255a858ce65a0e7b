"""``lipsync visualize``: the video with each face track boxed and coloured by SyncNet's per-frame confidence.

**What is drawn.** The box is the crop window SyncNet saw (docs/protocol.md: the smoothed centre, the half size
``s`` widened by ``crop_scale``, reaching below the chin), not the detector's box: it is what was scored, so
a window that cuts the mouth off or drifts off the face shows as such. Parts outside the picture (the
reference pads them with grey) are clipped at the frame's edge. Its colour is the frame's smoothed
confidence read against the threshold band of :mod:`.confidence` (red below, amber in, green above); the
caption names the track and its LSE-D, LSE-C and offset, and the frame's confidence. Frames no track covers
say "no face track" in the top left corner, and so does every frame of a video without a usable track.

**Frames.** The output has the 25 fps frames every score is computed on (for a 25 fps input, its own
frames; for others, picked by the same ``frame_rule`` as the scores), so frame ``i`` of the output is frame
``i`` of the results. In ``reference`` fidelity the tracks were found on the replay, whose first frame is
repeated (:func:`~pytest_lipsync.faces.pipeline.replay_shift`); their frames are moved back onto the video's.

**File.** MP4, H.264 (yuv420p, odd sizes padded by a black row or column) and AAC (the original sound
re-encoded, starting at time 0), the index at the front (``faststart``): it plays in a browser, also from
the HTML report. Written to a temporary file and renamed, so a reader never sees half a video.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.errors import ConfigError, NoFaceTrackError
from pytest_lipsync.reports.confidence import ConfidenceBand, confidence_at
from pytest_lipsync.results import TrackScore, publish, temporary_beside

if TYPE_CHECKING:
    import av.audio.stream
    import av.container
    import av.packet

    from pytest_lipsync.media.decode import VideoSource
    from pytest_lipsync.progress import ProgressHook
    from pytest_lipsync.scoring.pipeline import PipelineResult
    from pytest_lipsync.scoring.scorer import Scorer
    from pytest_lipsync.settings import FrameRule

FPS = 25
# H.264 encoders in order of preference; libx264 is in PyAV's wheels.
H264_ENCODERS = ("libx264", "libopenh264")
AAC_FRAME = 1024
NO_TRACK = "no face track"
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
NO_TRACK_BACKGROUND = (40, 40, 160)


@dataclass(frozen=True)
class DrawnTrack:
    """One scored track as drawn: its 1-based number, its score, its first frame in the video's frames and
    its (N, 4) int x1, y1, x2, y2 crop windows (exclusive ends, not clipped to the frame)."""

    number: int
    score: TrackScore
    first_frame: int
    windows: np.ndarray

    def window(self, frame: int) -> np.ndarray | None:
        index = frame - self.first_frame
        return self.windows[index] if 0 <= index < len(self.windows) else None

    def caption(self, frame: int) -> tuple[str, str]:
        """Two lines: the track and this frame's confidence, then the track's numbers."""
        score, confidence = self.score, confidence_at(self.score.frame_confidence, frame - self.first_frame)
        shown = "-" if confidence is None else f"{confidence:.2f}"
        return (
            f"track {self.number} conf {shown}",
            f"LSE-D {score.lse_d:.3f} LSE-C {score.lse_c:.3f} offset {score.offset}",
        )


@dataclass(frozen=True)
class Annotated:
    """What was written: the file, its frame count, and how many of the frames no track covers."""

    path: Path
    frames: int
    frames_without_track: int
    tracks: int


def visualize(
    source: VideoSource, scorer: Scorer, output: Path, band: ConfidenceBand, progress: ProgressHook | None = None
) -> Annotated:
    """Score the video's face tracks with ``scorer`` and write the annotated copy to ``output``.

    A video without a usable track is still written, every frame marked; any other failure raises.
    """
    from pytest_lipsync.scoring.pipeline import replay_shift

    encoder = h264_encoder()
    try:
        result: PipelineResult | None = scorer.score_tracks(source.path, progress)
    except NoFaceTrackError:
        result = None
    shift = replay_shift(source, scorer.settings.fidelity == "reference")
    tracks = () if result is None else drawn_tracks(result, source, scorer.settings.crop_scale, shift)
    return write_annotated(source, output, tracks, band, encoder, scorer.settings.frame_rule)


def h264_encoder() -> str:
    """The first H.264 encoder this PyAV build has; browsers play H.264 in MP4 everywhere."""
    import av

    for name in H264_ENCODERS:
        if name in av.codecs_available:
            return name
    raise ConfigError(
        f"this PyAV build has no H.264 encoder (looked for {', '.join(H264_ENCODERS)}), "
        "which the annotated video needs",
        hint="Install PyAV from its PyPI wheels (pip install --force-reinstall av), which include libx264",
    )


def drawn_tracks(result: PipelineResult, source: VideoSource, crop_scale: float, shift: int) -> tuple[DrawnTrack, ...]:
    """The tracks' crop windows in frame coordinates, computed as cropping computes them (on the decoded
    frames' size: a rotated video's upright frames are not the size its header says)."""
    from pytest_lipsync.faces.crop import crop_windows

    first = next(source.frames(1), None)
    if first is None:
        return ()
    height, width = first.shape[1:3]
    drawn = []
    for number, (score, track) in enumerate(zip(result.tracks, result.geometry, strict=True), 1):
        pad, top, bottom, left, right = crop_windows(
            track.s, track.cx, track.cy, height, width, crop_scale=crop_scale
        ).T
        windows = np.column_stack([left - pad, top - pad, right - pad, bottom - pad])
        drawn.append(DrawnTrack(number, score, track.first_frame - shift, windows))
    return tuple(drawn)


def write_annotated(
    source: VideoSource,
    output: Path,
    tracks: Sequence[DrawnTrack],
    band: ConfidenceBand,
    encoder: str,
    rule: FrameRule = "fps_filter",
) -> Annotated:
    """Draw on every 25 fps frame of ``source`` (picked by ``rule``) and write the MP4 with its sound, atomically."""
    import av

    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = temporary_beside(output, ".mp4")
    os.close(handle)
    frames = uncovered = 0
    try:
        with av.open(str(temporary), "w", format="mp4", options={"movflags": "faststart"}) as container:
            video = container.add_stream(encoder, rate=FPS)
            video.pix_fmt = "yuv420p"
            sound = _SoundMuxer(container, source)
            for frame in source.decoded("bgr24", rule):
                picture, covered = annotate_frame(frame.to_ndarray(), frames, tracks, band)
                picture = _even(picture)
                if frames == 0:
                    video.height, video.width = picture.shape[:2]
                sound.until(Fraction(frames, FPS))
                out = av.VideoFrame.from_ndarray(picture, format="bgr24")
                out.pts, out.time_base = frames, Fraction(1, FPS)
                container.mux(video.encode(out))
                frames, uncovered = frames + 1, uncovered + (not covered)
            container.mux(video.encode(None))
            sound.until(None)
        publish(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Annotated(output, frames, uncovered, len(tracks))


def annotate_frame(
    picture: np.ndarray, frame: int, tracks: Sequence[DrawnTrack], band: ConfidenceBand
) -> tuple[np.ndarray, bool]:
    """``picture`` (BGR, drawn on in place) with the boxes of the tracks covering ``frame``; and whether any does.

    A box is white where its track has no confidence to show (a result without the per-frame series)."""
    covering = [(track, window) for track in tracks if (window := track.window(frame)) is not None]
    for track, window in covering:
        confidence = confidence_at(track.score.frame_confidence, frame - track.first_frame)
        colour = band.colour(confidence) if confidence is not None else WHITE
        draw_box(picture, window, colour)
        inset = box_thickness(*picture.shape[:2])
        _label(picture, track.caption(frame), (int(window[0]) + inset, int(window[1]) + inset), BLACK)
    if not covering:
        _label(picture, (NO_TRACK,), (0, 0), NO_TRACK_BACKGROUND)
    return picture, bool(covering)


def box_thickness(height: int, width: int) -> int:
    """Thick enough to keep its colour through 4:2:0 chroma subsampling and H.264 (at least 4 pixels)."""
    return max(4, min(height, width) // 120)


def draw_box(picture: np.ndarray, window: np.ndarray, colour: tuple[int, int, int]) -> None:
    """A rectangle inside ``window`` (x1, y1, x2, y2, exclusive ends), clipped to the picture."""
    height, width = picture.shape[:2]
    thick = box_thickness(height, width)
    x1, y1 = max(int(window[0]), 0), max(int(window[1]), 0)
    x2, y2 = min(int(window[2]), width), min(int(window[3]), height)
    if x2 <= x1 or y2 <= y1:
        return
    for rows, cols in (
        (slice(y1, min(y1 + thick, y2)), slice(x1, x2)),
        (slice(max(y2 - thick, y1), y2), slice(x1, x2)),
        (slice(y1, y2), slice(x1, min(x1 + thick, x2))),
        (slice(y1, y2), slice(max(x2 - thick, x1), x2)),
    ):
        picture[rows, cols] = colour


def _label(
    picture: np.ndarray, lines: Sequence[str], corner: tuple[int, int], background: tuple[int, int, int]
) -> None:
    """White lines of text on a filled ``background`` from the point ``corner`` down, kept inside the picture."""
    import cv2

    height, width = picture.shape[:2]
    scale = max(0.35, min(height, width) / 900)
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1) for line in lines]
    step = max(size[1] + baseline for size, baseline in sizes) + 2
    text_width = max(size[0] for size, _ in sizes) + 2
    x = min(max(corner[0], 0), max(width - text_width, 0))
    top = min(max(corner[1], 0), max(height - step * len(lines), 0))
    cv2.rectangle(picture, (x, top), (x + text_width, top + step * len(lines)), background, cv2.FILLED)
    for number, (line, ((_, line_height), _)) in enumerate(zip(lines, sizes)):
        baseline_y = top + number * step + line_height + 1
        cv2.putText(picture, line, (x + 1, baseline_y), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)


def _even(picture: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: a black row or column is added where one is odd."""
    height, width = picture.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return picture
    return np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)))


class _SoundMuxer:
    """The source's first audio stream re-encoded to AAC, muxed as the video's time reaches it, so that the
    two streams interleave (a browser then plays the file while it downloads)."""

    def __init__(self, container: av.container.OutputContainer, source: VideoSource) -> None:
        self._container = container
        self._packets: Iterator[av.packet.Packet] = iter(())
        self._next: av.packet.Packet | None = None
        rate, channels = source.info.audio_rate, source.info.audio_channels
        if rate and channels:
            layout = "mono" if channels == 1 else "stereo"
            stream = container.add_stream("aac", rate=rate, layout=layout)
            self._packets = _aac_packets(source.path, stream, rate, layout)
            self._next = next(self._packets, None)

    def until(self, time: Fraction | None) -> None:
        """Mux the packets that start before ``time``; all that are left when it is None."""
        while self._next is not None and (time is None or self._before(self._next, time)):
            self._container.mux(self._next)
            self._next = next(self._packets, None)

    @staticmethod
    def _before(packet: av.packet.Packet, time: Fraction) -> bool:
        # The packets come from the AAC encoder (_aac_packets), which stamps each with its frame's pts and the
        # stream's time base: an encoded packet always has both.
        assert packet.pts is not None and packet.time_base is not None
        return packet.pts * packet.time_base < time


def _aac_packets(path: Path, stream: av.audio.stream.AudioStream, rate: int, layout: str) -> Iterator[av.packet.Packet]:
    """Decode (the encoder's trailing padding cut at the stream's duration, as scoring does), resample to planar
    float, encode in AAC's 1024-sample frames, the last one shorter so that the sound keeps its length; times
    count from 0."""
    import av

    from pytest_lipsync.media.decode import _frames_within_duration

    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()
    written = 0
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        for decoded in chain(_frames_within_duration(container.decode(audio), audio), [None]):
            for frame in resampler.resample(decoded):
                frame.pts = None
                fifo.write(frame)
            while fifo.samples >= (AAC_FRAME if decoded is not None else 1):
                chunk = fifo.read(min(AAC_FRAME, fifo.samples))
                # read() gives None only when asked for more samples than the FIFO holds, which the bound prevents.
                assert chunk is not None
                chunk.pts, chunk.time_base = written, Fraction(1, rate)
                written += chunk.samples
                yield from stream.encode(chunk)
    yield from stream.encode(None)
