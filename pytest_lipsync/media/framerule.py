"""Which source frames ``ffmpeg -r 25`` into AVI, then JPEG extraction, puts in the reference's 25 fps stream.

The reference converts with ``ffmpeg -qscale:v 2 -async 1 -r 25 video.avi`` and extracts ``video.avi`` as JPEGs
with the image2 muxer. Both steps pick frames with the FFmpeg command line's own frame-rate code, not with
libavfilter's ``fps`` filter (which the ``fps_filter`` rule uses: the frame nearest in time to each slot):

1. Into AVI the command line syncs in its variable-rate mode. Each frame's timestamp and duration are put on
   the 25 fps grid (timestamps with a small epsilon that keeps them off exact midpoints; durations in whole
   slots, rounded half to even, or a nominal one where the frame carries none); a frame that falls too far
   behind the next free slot is dropped, one ahead of it is moved forward (leaving a gap), anything between
   takes the next free slot. Timing drifts by about a frame before a frame is dropped, so most slots of a 30
   fps input show the frame one later than the nearest.
2. The extraction is constant-rate: a gap of one slot is filled by the frame after it, a longer gap by the frame
   before it and then the one after; no frame is dropped there, because the AVI holds one frame per slot.

This follows the command line's ``do_video_out`` as FFmpeg 4.2 and 5.1 have it, and matches what both builds
wrote, frame for frame (``tests/data/ffmpeg_r25_frames.json``). The command line of FFmpeg 9.0 (rewritten since)
takes a frame's exact duration instead of whole slots, lets frames drift further before it drops one, and so
shows another frame in about a third of the slots of a 30 fps input, and one frame more at the end. The
reference's published numbers come from the older code.

The duration a frame carries is what FFmpeg 5.1's demuxers report: the packet's, except in MP4 and MOV tracks
with reordered frames (composition offsets), whose packets it reports without one; libavformat then takes the
codec's nominal frame duration, and none when the codec reports 1000 fps or more (H.264 encoded with a fine time
base does) or nothing. FFmpeg 4.2 takes the stream's frame rate there instead, so the two builds differ only on
such implausible codec rates (the ``30fps_fine_time_base.mp4`` case); this follows 5.1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import av.container
    import av.video.stream

FPS = 25
_EPSILON = 1.0 / (1 << 17)  # added to every timestamp on the grid, away from zero
_FINE_BITS = 16  # extra precision of timestamps on the grid: 29 - log2(25), at most 16
_SLOT = 1 / FPS  # the encoder's time base, 1/25, as the double FFmpeg divides by
_MAX_REPEATS = 3600 * 30 * 30  # the command line skips a frame it would repeat more often (dts_error_threshold * 30)
_MOV = "mov"  # in the name of the MP4/MOV demuxer

T = TypeVar("T")


@dataclass(frozen=True)
class StreamClock:
    """A video stream's timing as FFmpeg's command line reads it, before the first frame.

    ``start``: the container's start (the earliest stream's) in ticks of ``time_base``, subtracted from every
    timestamp. ``frame_rate``: the stream's (``av_guess_frame_rate``), which gives a frame without a duration
    its nominal one. ``nominal``: the duration in ticks that every frame carries instead of its packet's, where
    the demuxer reports packets without one (``None``: each packet's own).
    """

    time_base: Fraction
    start: int = 0
    frame_rate: Fraction | None = None
    nominal: int | None = None

    def slots(self, pts: int) -> float:
        """``pts`` on the 25 fps grid, as the command line computes it (fine ticks, then the epsilon)."""
        fine = _rescale(pts - self.start, self.time_base, Fraction(1, FPS << _FINE_BITS)) / (1 << _FINE_BITS)
        return fine + _EPSILON if fine > 0 else fine - _EPSILON

    def duration(self, ticks: int) -> float:
        """A frame's duration in slots: rounded half to even (in single precision, as ``lrintf``), or where that
        is no whole slot, the nominal one from the frame rate, at most one slot."""
        whole = round(float(np.float32(ticks * float(self.time_base) / _SLOT)))
        if whole > 0:
            return float(whole)
        nominal = 1 / (float(self.frame_rate) * _SLOT) if self.frame_rate else 0.0
        return min(nominal, 1 / (FPS * _SLOT))


def stream_clock(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> StreamClock:
    """The clock of ``stream``: its time base, the container's start, and the durations FFmpeg 5.1 reads."""
    time_base = stream.time_base
    # libavformat gives every stream of an opened input a time base; PyAV's None is for streams not yet set up.
    assert time_base is not None
    start = 0 if container.start_time is None else _rescale(container.start_time, Fraction(1, 1_000_000), time_base)
    nominal = None
    if _MOV in container.format.name and stream.codec_context.has_b_frames:
        nominal = _nominal_ticks(stream.codec_context.framerate, time_base)
    return StreamClock(time_base, start, stream.guessed_rate, nominal)


def _nominal_ticks(frame_rate: Fraction | None, time_base: Fraction) -> int:
    """libavformat's made-up packet duration from the codec's frame rate: none at 1000 fps or more."""
    if not frame_rate or frame_rate.denominator * 1000 <= frame_rate.numerator:
        return 0
    return (frame_rate.denominator * time_base.denominator) // (frame_rate.numerator * time_base.numerator)


class AviTimeline:
    """Step 1: each source frame's slot in ``video.avi``, or ``None`` where the command line drops it."""

    def __init__(self, clock: StreamClock) -> None:
        self.clock = clock
        self._next = 0  # the next free slot

    def place(self, pts: int, duration: int) -> int | None:
        """The slot of the frame at ``pts`` carrying ``duration`` ticks (replaced by the clock's nominal one)."""
        clock = self.clock
        at = clock.slots(pts)
        lag = at - self._next
        reach = lag + clock.duration(duration if clock.nominal is None else clock.nominal)
        if lag < 0 < reach:  # starts before the next free slot but lasts into it: it takes that slot
            at = self._next
        if reach <= -0.6:
            return None
        if reach > 0.6:
            self._next = _rint(at)
        slot = self._next
        self._next += 1
        return slot


def extracted(placed: Iterable[tuple[T, int]]) -> Iterator[T]:
    """Step 2: the frames the JPEG extraction writes, one per 25 fps slot, from (frame, slot in the AVI) pairs
    in slot order. A frame repeats to fill the gap before it, the frame before it filling all but the last
    slot of a longer gap; at the end the last frame repeats as often as the previous frame did in the middle
    of the last three frames' gaps."""
    following = 0  # the next slot to write
    previous: T | None = None
    repeats = [0, 0, 0]  # how often each of the last three frames made the previous one repeat
    for item, slot in placed:
        lag = (slot + _EPSILON if slot > 0 else slot - _EPSILON) - following
        if lag < 0 < lag + 1:
            lag = 0.0
        total, before = 1, 0
        if lag + 1 > 1.1:
            total = _rintf(lag + 1)
            before = _rintf(lag - 0.6) if lag > 1.1 else 0
        repeats = [before, *repeats[:2]]
        if total > _MAX_REPEATS:  # a timestamp days ahead: the command line skips the frame
            continue
        for copy in range(total):
            yield previous if copy < before and previous is not None else item
        following += total
        previous = item
    if previous is not None:
        yield from [previous] * sorted(repeats)[1]


def _rescale(value: int, source: Fraction, target: Fraction) -> int:
    """``av_rescale_q``: ``value`` from one time base to another, rounded to nearest, halves away from zero."""
    exact = value * source / target
    return int(math.copysign(math.floor(abs(exact) + Fraction(1, 2)), exact))


def _rint(value: float) -> int:
    """``llrint``: to nearest, halves to even."""
    return round(value)


def _rintf(value: float) -> int:
    """``llrintf``: as :func:`_rint`, on the value in single precision."""
    return round(float(np.float32(value)))
