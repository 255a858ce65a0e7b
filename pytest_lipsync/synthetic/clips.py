"""Small deterministic talking-head-like clips, written with PyAV.

A clip is a face-like picture whose mouth opens with a syllable envelope, and a voiced sound whose
loudness follows the same envelope, so sound and picture are related the way speech and lips are.
Everything derives from a seed; nothing is downloaded or committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av.audio.stream
    import av.container
    import av.video.stream

# Container suffix -> (video codec, audio codec). PCM where the container takes it, so audio is exact.
CODECS: dict[str, tuple[str, str]] = {
    ".mp4": ("libx264", "aac"),
    ".mkv": ("libx264", "pcm_s16le"),
    ".mov": ("libx264", "pcm_s16le"),
    ".avi": ("mpeg4", "pcm_s16le"),
}
_VFR_TIME_BASE = Fraction(1, 1000)
_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}  # channel count -> PyAV layout name
FACE_COLOUR = (90, 140, 200)  # BGR skin-like
MOUTH_COLOUR = (40, 30, 60)
CUT_BACKGROUND = (220, 40, 0)  # BGR saturated blue: far from grey in hue, saturation and value
MARKER_RING = 6  # pixels: survives 4:2:0 chroma subsampling and the lossy steps


@dataclass(frozen=True)
class ClipSpec:
    """What to write; times are in seconds, sizes in pixels."""

    seconds: float = 2.0
    fps: float = 25.0
    width: int = 96
    height: int = 96
    audio_rate: int = 16000
    audio_channels: int = 1
    seed: int = 0
    audio_delay_frames: int = 0
    video: bool = True
    audio: bool = True
    pts: Sequence[float] | None = None  # explicit frame times (variable frame rate); overrides fps
    video_codec: str | None = None
    audio_codec: str | None = None
    faces: int = 1  # side by side, each in its own column of the frame, all talking together
    marker: bool = False  # ring each face in the marker colour of synthetic.faces (the marker detector's face)
    cut_frame: int | None = None  # from this frame on the background changes colour: a scene cut
    border: int = 0  # grey pixels around the picture on each side (frame: width + 2 * border): a small face
    pix_fmt: str | None = None  # the encoder's pixel format (default yuv420p, yuvj420p for mjpeg)
    silent: bool = False  # digital silence instead of speech


def envelope(count: int, seed: int) -> np.ndarray:
    """Per-frame mouth opening / loudness in 0..1, independent from frame to frame so that sync is sharp."""
    rng = np.random.default_rng(seed)
    return np.clip((rng.random(count) - 0.2) / 0.7, 0.0, 1.0)


def face_frame(
    width: int, height: int, opening: float, index: int, *, faces: int = 1, marker: bool = False, cut: bool = False
) -> np.ndarray:
    """A BGR frame: grey background (saturated blue after a ``cut``), ``faces`` oval faces with eyes and a
    mouth ``opening`` (0..1) wide open, each ringed in the marker colour when ``marker``."""
    frame = np.full((height, width, 3), 128, np.uint8)
    frame[:, :, 1] = 128 + (index % 7)  # a little background motion, as in real video
    if cut:
        frame[:] = CUT_BACKGROUND
    column = width // faces
    for k in range(faces):
        _draw_face(frame, k * column, column, opening, marker)
    return frame


def _draw_face(frame: np.ndarray, left: int, width: int, opening: float, marker: bool) -> None:
    import cv2

    from pytest_lipsync.synthetic.faces import MARKER_RGB

    height = frame.shape[0]
    centre = (left + width // 2, height // 2)
    axes = (width * 3 // 10, height * 4 // 10)
    if marker:
        ring = MARKER_RING // 2
        cv2.ellipse(frame, centre, (axes[0] + ring, axes[1] + ring), 0, 0, 360, MARKER_RGB, MARKER_RING)
    cv2.ellipse(frame, centre, axes, 0, 0, 360, FACE_COLOUR, -1)
    for side in (-1, 1):
        cv2.circle(
            frame, (centre[0] + side * width // 8, centre[1] - height // 10), max(1, width // 24), (30, 30, 30), -1
        )
    mouth = (max(2, width // 8), max(1, int(1 + opening * height / 10)))
    cv2.ellipse(frame, (centre[0], centre[1] + height // 5), mouth, 0, 0, 360, MOUTH_COLOUR, -1)


def speech(seconds: float, rate: int, channels: int, seed: int, delay_frames: int = 0) -> np.ndarray:
    """int16 (channels, samples): a voiced buzz whose loudness follows :func:`envelope`, optionally delayed."""
    frames = int(np.ceil(seconds * 25)) + 1
    gains = envelope(frames, seed)
    t = np.arange(round(seconds * rate)) / rate
    per_sample = np.interp(t * 25, np.arange(frames), gains)
    rng = np.random.default_rng(seed + 1)
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140, 280, 420, 700, 1100)))
    signal = per_sample * (voice + 0.1 * rng.standard_normal(len(t)))
    delay = delay_frames * rate // 25
    signal = np.concatenate([np.zeros(delay), signal])[: len(t)]
    mono = np.round(signal / np.abs(signal).max() * 12000).astype(np.int16)
    return np.repeat(mono[None, :], channels, axis=0)


def write_clip(path: Path, spec: ClipSpec = ClipSpec()) -> Path:
    """Write the clip described by ``spec`` to ``path`` (container from the suffix)."""
    import av

    video_codec, audio_codec = CODECS[path.suffix]
    times = _frame_times(spec)
    openings = envelope(len(times), spec.seed)
    with av.open(str(path), "w") as container:
        vstream = astream = None
        if spec.video:
            vstream = container.add_stream(spec.video_codec or video_codec, rate=_rate(spec))
            vstream.width, vstream.height = spec.width + 2 * spec.border, spec.height + 2 * spec.border
            vstream.pix_fmt = spec.pix_fmt or ("yuvj420p" if vstream.codec_context.name == "mjpeg" else "yuv420p")
            if spec.pts is not None:
                vstream.codec_context.time_base = _VFR_TIME_BASE
            if vstream.codec_context.name == "libx264":
                vstream.options = {"crf": "12", "preset": "veryfast"}
        if spec.audio:
            astream = container.add_stream(spec.audio_codec or audio_codec, rate=spec.audio_rate)
            astream.layout = _LAYOUTS[spec.audio_channels]
        if vstream is not None:
            _write_video(container, vstream, times, openings, spec)
        if astream is not None:
            _write_audio(container, astream, spec)
    return path


def _frame_times(spec: ClipSpec) -> list[float]:
    if spec.pts is not None:
        return list(spec.pts)
    return [i / spec.fps for i in range(round(spec.seconds * spec.fps))]


def _rate(spec: ClipSpec) -> Fraction:
    return Fraction(30) if spec.pts is not None else Fraction(spec.fps).limit_denominator(1001)


def _write_video(
    container: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    times: list[float],
    openings: np.ndarray,
    spec: ClipSpec,
) -> None:
    import av

    for index, moment in enumerate(times):
        cut = spec.cut_frame is not None and index >= spec.cut_frame
        picture = face_frame(
            spec.width, spec.height, openings[index], index, faces=spec.faces, marker=spec.marker, cut=cut
        )
        picture = np.pad(picture, ((spec.border,) * 2, (spec.border,) * 2, (0, 0)), constant_values=128)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        time_base = _VFR_TIME_BASE if spec.pts is not None else 1 / _rate(spec)
        frame.pts = round(moment / time_base)
        frame.time_base = time_base
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _write_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, spec: ClipSpec) -> None:
    import av

    samples = speech(spec.seconds, spec.audio_rate, spec.audio_channels, spec.seed, spec.audio_delay_frames)
    if spec.silent:
        samples[:] = 0
    chunk = 1024
    layout = _LAYOUTS[spec.audio_channels]
    for start in range(0, samples.shape[1], chunk):
        piece = np.ascontiguousarray(samples[:, start : start + chunk])
        frame = av.AudioFrame.from_ndarray(piece.T.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = spec.audio_rate
        frame.pts = start
        frame.time_base = Fraction(1, spec.audio_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
