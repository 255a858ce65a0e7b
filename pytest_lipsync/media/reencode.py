"""The reference's lossy JPEG round trip, replayed in memory (PROTOCOL 1.1).

The reference writes every frame to disk with ``ffmpeg ... -threads 1 -f image2 %06d.jpg`` and reads the
files back with OpenCV; its published scores include that loss. Here the same libavcodec ``mjpeg``
encoder runs in-process: one encoder for the whole sequence (its rate control spans frames), single
threaded, at a 25 fps time base, ``yuvj420p`` input; OpenCV decodes each packet as it decoded the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from pytest_lipsync.media.decode import FPS

if TYPE_CHECKING:
    import av.video.codeccontext
    import av.video.frame

JPEG_PIX_FMT = "yuvj420p"
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: -qscale:v q means global_quality = q * 118


def jpeg_round_trip(frames: Iterable[av.video.frame.VideoFrame], qscale: int | None = None) -> Iterator[np.ndarray]:
    """BGR uint8 frames as OpenCV reads them back from ffmpeg's JPEGs.

    ``qscale=None`` is ffmpeg's default mjpeg rate control (200 kb/s, q 2..31); ``qscale=2`` is
    ``-qscale:v 2``. Input frames must be ``yuvj420p``, as ffmpeg's auto-inserted conversion makes them.
    """
    import cv2

    encoder: av.video.codeccontext.VideoCodecContext | None = None
    for index, frame in enumerate(frames):
        if encoder is None:
            encoder = _encoder(frame.width, frame.height, qscale)
        frame.pts = index
        frame.time_base = encoder.time_base
        for packet in encoder.encode(frame):
            yield cv2.imdecode(np.frombuffer(bytes(packet), np.uint8), cv2.IMREAD_COLOR)
    if encoder is not None:
        for packet in encoder.encode(None):
            yield cv2.imdecode(np.frombuffer(bytes(packet), np.uint8), cv2.IMREAD_COLOR)


def _encoder(width: int, height: int, qscale: int | None) -> av.video.codeccontext.VideoCodecContext:
    import av

    options = {} if qscale is None else {"flags": "+qscale", "global_quality": str(qscale * _QP2LAMBDA)}
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = JPEG_PIX_FMT
    encoder.time_base = Fraction(1, FPS)
    encoder.framerate = Fraction(FPS)
    encoder.thread_count = 1
    encoder.options = options
    encoder.open()
    return encoder
