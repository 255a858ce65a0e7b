"""The reference's lossy round trips, replayed in memory (docs/protocol.md).

The reference writes its intermediate media to disk with ffmpeg and OpenCV and reads them back; its published
scores include those losses. Here the same libavcodec encoders run in-process (PyAV bundles them), each fed
as the reference's command line feeds it:

- JPEG frames (``ffmpeg ... -threads 1 -f image2 %06d.jpg``, read back with OpenCV): one ``mjpeg`` encoder for
  the whole sequence (its rate control spans frames), single threaded, 25 fps time base, ``yuvj420p`` input.
- ``ffmpeg -qscale:v 2 -async 1 -r 25 video.avi``: ``mpeg4`` at a fixed quantiser 2 and ``libmp3lame`` at its
  defaults (source rate and channels, and LAME's own default bit rate for them: 128 kb/s for 44.1 or 48 kHz,
  24 kb/s for 16 kHz mono; ffmpeg passes no bit rate). The AVI container stores no encoder delay, so the
  reference's audio keeps the MP3 priming (1105 samples at the source rate) and the last frame's padding:
  packets are decoded as bare bytes, without the skip-samples side data a smarter container would honour.
  The muxer shifts every stream by that priming instead, and the 25 fps frames extracted from the AVI fill the
  gap after the first frame (``leading_repeats``). Which frames the AVI holds: :mod:`.framerule`.
- The crops of a track through OpenCV's own ``VideoWriter`` (fourcc ``XVID``, 25 fps, 224x224): the one step
  that needs a file, because OpenCV's writer only writes files; it is deleted once read back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.media.decode import FPS

if TYPE_CHECKING:
    import av.audio.codeccontext
    import av.audio.frame
    import av.packet
    import av.video.codeccontext
    import av.video.frame

JPEG_PIX_FMT = "yuvj420p"
MPEG4_PIX_FMT = "yuv420p"
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: -qscale:v q means global_quality = q * 118
# LAME's encoder delay (576) plus the decoder delay ffmpeg adds (528 + 1): libavcodec's initial_padding.
MP3_PRIMING = 1105
_MP3_RATES = (44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000)
# ffmpeg's default decoder for MP3 is the floating-point one; the fixed-point "mp3" decoder rounds differently.
_MP3_DECODER = "mp3float"
_VideoCodec = Literal["mjpeg", "mpeg4"]  # the video encoders the round trips replay


def jpeg_round_trip(frames: Iterable[av.video.frame.VideoFrame], qscale: int | None = None) -> Iterator[np.ndarray]:
    """BGR uint8 frames as OpenCV reads them back from ffmpeg's JPEGs.

    ``qscale=None`` is ffmpeg's default mjpeg rate control (200 kb/s, q 2..31); ``qscale=2`` is
    ``-qscale:v 2``. Input frames must be ``yuvj420p``, as ffmpeg's auto-inserted conversion makes them.
    """
    return map(decode_jpeg, jpeg_files(frames, qscale))


def jpeg_files(frames: Iterable[av.video.frame.VideoFrame], qscale: int | None = None) -> Iterator[bytes]:
    """The bytes of each JPEG file ffmpeg writes (see :func:`jpeg_round_trip`), for keeping them encoded."""
    for packet in _encoded(frames, "mjpeg", JPEG_PIX_FMT, qscale):
        yield bytes(packet)


def decode_jpeg(data: bytes) -> np.ndarray:
    """A JPEG file's BGR uint8 pixels as ``cv2.imread`` gives them."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    # The bytes are a JPEG file libavcodec's mjpeg encoder wrote (jpeg_files), which OpenCV always reads back.
    assert image is not None
    return image


def mpeg4_round_trip(frames: Iterable[av.video.frame.VideoFrame]) -> Iterator[av.video.frame.VideoFrame]:
    """``yuv420p`` frames as a decoder reads them back from ``ffmpeg -qscale:v 2 video.avi``.

    The encoder runs single threaded: ffmpeg's default (one slice per thread) would make the bitstream,
    and so the scores, depend on the machine's core count.
    """
    import av

    decoder = av.CodecContext.create("mpeg4", "r")
    for packet in _encoded(frames, "mpeg4", MPEG4_PIX_FMT, 2):
        yield from decoder.decode(packet)
    yield from decoder.decode(None)


def mp3_round_trip(frames: Iterable[av.audio.frame.AudioFrame]) -> Iterator[av.audio.frame.AudioFrame]:
    """Audio frames as ffmpeg decodes the MP3 track of ``video.avi``, priming and padding included."""
    import av

    encoder: av.audio.codeccontext.AudioCodecContext | None = None
    # PyAV's stubs list no "mp3float" among audio codec names, so they type its context as a plain CodecContext.
    decoder = cast("av.audio.codeccontext.AudioCodecContext", av.CodecContext.create(_MP3_DECODER, "r"))
    for frame in frames:
        if encoder is None:
            encoder = _mp3_encoder(frame)
        frame.pts = None  # the encoder's own sample count times the stream, as after ffmpeg's resampler
        for packet in encoder.encode(frame):
            yield from decoder.decode(av.Packet(bytes(packet)))
    if encoder is not None:
        for packet in encoder.encode(None):
            yield from decoder.decode(av.Packet(bytes(packet)))
    yield from decoder.decode(None)


def _mp3_encoder(first: av.audio.frame.AudioFrame) -> av.audio.codeccontext.AudioCodecContext:
    """libmp3lame with ffmpeg's defaults; the rate and channels of the source, or the nearest MP3 allows."""
    import av

    encoder = av.CodecContext.create("libmp3lame", "w")
    encoder.sample_rate = mp3_rate(first.sample_rate)
    encoder.layout = "mono" if first.layout.nb_channels == 1 else "stereo"
    encoder.format = "s32p"  # what ffmpeg negotiates for libmp3lame; LAME works in float either way
    encoder.time_base = Fraction(1, encoder.sample_rate)
    encoder.open()
    return encoder


def mp3_rate(source_rate: int) -> int:
    """The MP3 sample rate ffmpeg picks for a source: its own, or the nearest one MP3 allows."""
    return min(_MP3_RATES, key=lambda rate: abs(rate - source_rate))


def leading_repeats(source_rate: int) -> int:
    """Extra frames at the start of the reference's JPEGs of ``video.avi``, for audio at ``source_rate``.

    The MP3 track starts ``MP3_PRIMING`` samples early; the AVI muxer makes that non-negative by delaying
    every stream, which leaves a gap of ``ceil(priming / rate * 25)`` frame slots after the first frame (the
    AVI reads back with its first frame at 0, its second at 1 + the gap), and ffmpeg's constant-rate JPEG
    extraction fills the gap (measured with FFmpeg 9.0 for 8 to
    48 kHz: 4 at 8 kHz, 2 at 16 kHz, 1 at 44.1 and 48 kHz). Video then lags the audio's own priming delay. The
    extraction shows the first frame in all slots of the gap but the last, which shows the second frame (see
    :func:`~pytest_lipsync.media.framerule.extracted`; measured with FFmpeg 4.2, 5.1 and 9.0); the replay
    repeats the first frame in that slot too.
    """
    return -(-MP3_PRIMING * FPS // mp3_rate(source_rate))


class XvidRoundTrip:
    """One track's crops through ``cv2.VideoWriter`` (XVID, 25 fps) and back through the default JPEG step.

    ``write`` crops as they are made; ``read_back`` closes the file and streams the frames SyncNet sees (BGR
    224x224 after ffmpeg's 200 kb/s mjpeg step), deleting the file when done. ``discard`` deletes it unread.
    """

    def __init__(self, size: int = 224) -> None:
        import cv2

        handle, name = tempfile.mkstemp(prefix="lipsync-track-", suffix=".avi")
        os.close(handle)
        self.path = Path(name)
        self._writer = cv2.VideoWriter(name, cv2.VideoWriter.fourcc(*"XVID"), FPS, (size, size))
        if not self._writer.isOpened():
            self.discard()
            raise ConfigError(
                f"OpenCV {cv2.__version__} cannot write XVID video, which fidelity 'reference' replays",
                hint="Install opencv-python-headless from PyPI (its builds include FFmpeg), or use fidelity = 'clean'",
            )

    def write(self, crops: np.ndarray) -> None:
        for crop in crops:
            self._writer.write(np.ascontiguousarray(crop))

    def read_back(self) -> Iterator[np.ndarray]:
        from pytest_lipsync.media.decode import open_video

        self._writer.release()
        try:
            yield from jpeg_round_trip(open_video(self.path).decoded(JPEG_PIX_FMT))
        finally:
            self.discard()

    def discard(self) -> None:
        self._writer.release()
        self.path.unlink(missing_ok=True)


def _encoded(
    frames: Iterable[av.video.frame.VideoFrame], codec: _VideoCodec, pix_fmt: str, qscale: int | None
) -> Iterator[av.packet.Packet]:
    """Packets of one single-threaded encoder at a 25 fps time base, frames numbered in order, then flushed."""
    encoder: av.video.codeccontext.VideoCodecContext | None = None
    for index, frame in enumerate(frames):
        if encoder is None:
            encoder = _video_encoder(codec, pix_fmt, frame.width, frame.height, qscale)
        frame.pts = index
        frame.time_base = encoder.time_base
        yield from encoder.encode(frame)
    if encoder is not None:
        yield from encoder.encode(None)


def _video_encoder(
    codec: _VideoCodec, pix_fmt: str, width: int, height: int, qscale: int | None
) -> av.video.codeccontext.VideoCodecContext:
    import av

    options = {} if qscale is None else {"flags": "+qscale", "global_quality": str(qscale * _QP2LAMBDA)}
    encoder = av.CodecContext.create(codec, "w")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = pix_fmt
    encoder.time_base = Fraction(1, FPS)
    encoder.framerate = Fraction(FPS)
    encoder.thread_count = 1
    encoder.options = options
    encoder.open()
    return encoder
