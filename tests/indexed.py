"""Clips whose frame j shows j in binary, so that any 25 fps conversion can be read back as source indices.

Each of ``BITS`` vertical stripes is black or white; they survive H.264 at crf 10 and the reference's MPEG-4
and JPEG steps at quantiser 2, so a frame's source index reads back exactly after every conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

BITS = 8
STRIPE = 12
HEIGHT = 32
WIDTH = BITS * STRIPE


@dataclass(frozen=True)
class IndexedClip:
    """How an indexed clip is written: frame times as ticks of the encoder's time base, and what sets the
    timing a demuxer reports (the container, the nominal rate the encoder writes into the stream, B-frames)."""

    suffix: str  # ".mp4" or ".mkv"
    rate: Fraction  # the stream's nominal frame rate
    time_base: Fraction  # of the encoder: H.264 writes 1 / (2 * time_base) as its frame rate when it is fine
    pts: tuple[int, ...]
    b_frames: bool = True  # False: no reordering, so an MP4 keeps a duration per frame
    audio_rate: int | None = None  # with a 440 Hz tone in PCM (Matroska) or AAC (MP4) at this rate

    def write(self, path: Path) -> Path:
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=self.rate)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.codec_context.time_base = self.time_base
            stream.options = {"crf": "10", "preset": "veryfast", **({} if self.b_frames else {"bf": "0"})}
            sound = None
            if self.audio_rate is not None:
                sound = container.add_stream("aac" if self.suffix == ".mp4" else "pcm_s16le", rate=self.audio_rate)
                sound.layout = "mono"
            for index, pts in enumerate(self.pts):
                frame = av.VideoFrame.from_ndarray(picture(index), format="rgb24")
                frame.pts, frame.time_base = pts, self.time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if sound is not None:
                _write_tone(container, sound, float((self.pts[-1] + 1) * self.time_base))
        return path


def picture(index: int) -> np.ndarray:
    """RGB frame showing ``index`` (0 .. 2**BITS - 1), least significant bit leftmost."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            pixels[:, bit * STRIPE : (bit + 1) * STRIPE] = 255
    return pixels


def read_index(frame: np.ndarray) -> int:
    """The index a frame (H, W, 3, any channel order) shows, from the middle of each stripe."""
    stripes = frame[4:-4].reshape(HEIGHT - 8, BITS, STRIPE, 3)[:, :, 3:-3].mean(axis=(0, 2, 3))
    return sum(1 << bit for bit in range(BITS) if stripes[bit] > 128)


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    import av

    rate = stream.rate
    samples = (np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate) * 8000).astype(np.int16)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
