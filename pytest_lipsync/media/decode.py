"""Decoding any file PyAV opens into the protocol's streams: 25 fps frames and 16 kHz mono int16 audio.

Both streams are measured from the container's start (the earliest stream start), so that frame ``i``
and audio sample ``640 * i`` describe the same instant even when one stream starts late. Frames are picked by
one of two rules: libavfilter's ``fps=25`` filter (``fps_filter``: the frame nearest in time to each slot, the
first frame repeated to fill a late start), or the reference's ``ffmpeg -r 25`` (``ffmpeg_r25``, see
:mod:`pytest_lipsync.media.framerule`); either way turned upright when the container carries rotation (display
matrix), as ``ffmpeg`` does by default. Audio comes from libswresample, as ``ffmpeg -ac 1 -ar 16000 -async 1``
gives it.

A header claiming more than ``max_pixels`` pixels per frame is refused before any frame is decoded, so a
hostile or corrupt file cannot make the decoder allocate gigabytes. Audio is decoded only to ``AUDIO_MARGIN``
past the end of the video stream's packets: one frame of video with hours of sound costs a second of sound.
Every pass, the audio's included, checks the video's deadline packet by packet. Only regular files are opened.

Damage in the middle of a file costs only the frames it hits. Video is decoded packet by packet: a packet
the decoder rejects (MJPEG, for one, raises ``InvalidDataError``) is skipped and counts as a lost frame; a
frame the decoder concealed (MPEG-4 and H.264 patch damaged blocks and flag the frame ``is_corrupt``) is
kept and counts as damaged. After a whole pass, more damaged frames than ``max_corrupt_fraction`` of the
frames the decoder was handed fail the video with ``decode_error``; fewer are reported with the score
(``damaged_frames``). Counts are of source frames, before the 25 fps conversion. A file the demuxer cannot
read on (a cut or garbled container) still fails at once: that is not a damaged frame but a lost stream.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from pytest_lipsync.errors import (
    DecodeError,
    NoAudioStreamError,
    NotFoundError,
    NoVideoStreamError,
    SilentAudioError,
    TooLargeError,
    UnreadableError,
    not_a_regular_file,
)
from pytest_lipsync.limits import Deadline, VideoLimits, video_timeout
from pytest_lipsync.media.framerule import AviTimeline, extracted, stream_clock
from pytest_lipsync.settings import FrameRule

if TYPE_CHECKING:
    import av.audio.frame
    import av.audio.stream
    import av.container
    import av.packet
    import av.stream
    import av.video.frame
    import av.video.stream

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
_MAX_PADDING = SAMPLE_RATE // 10
# Audio is decoded up to this many seconds past the video's end: no SyncNet window reads past the video's last
# frame, and one second is several times the shift of the reference's MP3 replay (its priming, 1105 samples: 69 ms
# at 16 kHz) and longer than an audio packet of any common codec, so the samples scoring reads are the whole track's.
AUDIO_MARGIN = 1.0
SILENCE_FLOOR_DBFS = -70.0  # a 40 ms frame quieter than this (RMS about its mean) carries no sound: see _check_sound
SOUND_FRAMES = 5  # frames of sound audio needs, one SyncNet window: fewer is silence (or a click)
_FULL_SCALE = 32768.0
_FLOOR_RMS = _FULL_SCALE * 10 ** (SILENCE_FLOOR_DBFS / 20)
_LEVEL_CHUNK = 4096  # frames per step of _frame_levels: 20 MB of float64

T = TypeVar("T")
_Decode = Callable[[Iterable["av.packet.Packet"]], Iterator["av.video.frame.VideoFrame"]]
# A lossy step replayed on the decoded audio (the reference's MP3 re-encode): frames in, frames out.
AudioReplay = Callable[[Iterator["av.audio.frame.AudioFrame"]], Iterator["av.audio.frame.AudioFrame"]]
_IMAGE_FORMATS = ("image2", "_pipe")  # demuxers of still images (a PNG renamed .mp4 opens as png_pipe)
# Clockwise rotation the display matrix asks for -> libavfilter filters that undo it (ffmpeg's autorotate).
_UPRIGHT: dict[int, tuple[tuple[str, str], ...]] = {
    90: (("transpose", "clock"),),
    180: (("hflip", ""), ("vflip", "")),
    270: (("transpose", "cclock"),),
}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, before any frame is decoded."""

    path: Path
    width: int
    height: int
    codec: str
    source_fps: float | None
    duration: float | None
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: int | None

    @property
    def expected_frames(self) -> int | None:
        """The 25 fps frame count the duration implies (for progress, not for arithmetic)."""
        return None if self.duration is None else round(self.duration * FPS)


class VideoSource:
    """A video file opened for reading; each ``frames()`` or ``audio()`` call is one streaming pass.

    ``deadline`` starts when the file is opened (or at ``limits.started``), with the ``timeout`` setting
    (``None``: the default for the header's duration); every decoding pass checks it. ``damaged_frames`` is
    known after a complete pass (every pass of one file finds the same damage, so it is set, never added up).
    """

    def __init__(self, path: str | Path, limits: VideoLimits = VideoLimits()) -> None:
        started = time.monotonic() if limits.started is None else limits.started
        self.path = Path(path)
        self.max_corrupt_fraction = limits.max_corrupt_fraction
        self.damaged_frames = 0
        with self._open() as container:
            self.info = _probe(self.path, container)
            self._origin = _origin(container)
        _check_size(self.info, limits.max_pixels)
        self.deadline = Deadline(
            self.path, video_timeout(limits.timeout, self.info.duration, self.info.width * self.info.height), started
        )

    def _open(self) -> av.container.InputContainer:
        """The container, for one pass; checked before each, so a file swapped for a FIFO is refused, not waited on."""
        import av

        if not self.path.exists():
            raise NotFoundError("no such file", path=self.path, hint="Check the path and the working directory")
        problem = not_a_regular_file(self.path)
        if problem is not None:
            raise UnreadableError(
                problem,
                path=self.path,
                hint="Only regular files are read (a FIFO, device or socket can keep a reader waiting forever); "
                "copy the video to a file",
            )
        try:
            return av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise UnreadableError(
                f"cannot be opened as a video ({_reason(exc)})",
                path=self.path,
                hint="The file is damaged, truncated or not a media file; re-export it",
            ) from exc

    def decoded(self, pix_fmt: str = "bgr24", rule: FrameRule = "fps_filter") -> Iterator[av.video.frame.VideoFrame]:
        """Frames of the constant 25 fps stream, picked by ``rule`` and converted to ``pix_fmt`` by libavfilter."""
        if rule == "ffmpeg_r25":
            return _checked(extracted(self.avi_frames(pix_fmt)), self.deadline)
        return self._pass(lambda container, packets, decode: self._fps_frames(container, decode(packets), pix_fmt))

    def avi_frames(self, pix_fmt: str = "bgr24") -> Iterator[tuple[av.video.frame.VideoFrame, int]]:
        """The frames the reference's ``ffmpeg -r 25`` writes to its AVI, in ``pix_fmt``, each with its 25 fps slot
        (:class:`~pytest_lipsync.media.framerule.AviTimeline`; the slots may leave gaps, which the JPEG extraction
        fills: :func:`~pytest_lipsync.media.framerule.extracted`)."""
        return self._pass(lambda container, packets, decode: _avi_frames(container, packets, decode, pix_fmt))

    def _pass(
        self, convert: Callable[[av.container.InputContainer, Iterator[av.packet.Packet], _Decode], Iterator[T]]
    ) -> Iterator[T]:
        """One decoding pass over the first video stream: ``convert`` gets its packets and the function that
        decodes them (counting damage), and yields what the pass yields."""
        import av

        with self._open() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            damage = _Damage()
            try:
                yield from convert(
                    container, container.demux(stream), lambda packets: damage.frames(packets, self.deadline)
                )
            except av.FFmpegError as exc:
                raise DecodeError(
                    f"video decoding failed ({_reason(exc)})",
                    path=self.path,
                    hint="The file is damaged; re-export it",
                ) from exc
        damage.check(self.path, self.max_corrupt_fraction)
        self.damaged_frames = damage.damaged

    def _fps_frames(
        self, container: av.container.InputContainer, frames: Iterator[av.video.frame.VideoFrame], pix_fmt: str
    ) -> Iterator[av.video.frame.VideoFrame]:
        stream = container.streams.video[0]
        graph = None
        for frame in frames:
            if graph is None:  # built on the first frame, which carries the rotation
                fps = ("fps", f"fps={FPS}:start_time={self._origin!r}")
                graph = _graph(stream, pix_fmt, upright_filters(frame.rotation), fps)
            graph.push(frame)
            yield from _drain(graph, self.deadline)
        if graph is not None:
            graph.push(None)
            yield from _drain(graph, self.deadline)

    def frames(self, batch_size: int = 32, pix_fmt: str = "bgr24") -> Iterator[np.ndarray]:
        """Batches (B, H, W, 3) uint8 of the 25 fps stream; memory stays at one batch."""
        return batched((frame.to_ndarray() for frame in self.decoded(pix_fmt)), batch_size)

    def audio(self, *, replay: AudioReplay | None = None) -> np.ndarray:
        """The first audio stream as 16 kHz mono int16 (not normalised), from the container's start.

        ``replay`` passes the decoded frames through a lossy step first (the reference's MP3 re-encode,
        ``reencode.mp3_round_trip``): the samples then keep the codec's priming and padding, as the reference's
        AVI does, so nothing is trimmed to the duration. It is a parameter, not an import, because replays are
        built on decoding, not the other way round.
        """
        import av

        with self._open() as container:
            if not container.streams.audio:
                raise NoAudioStreamError(
                    "has no audio stream; lip sync cannot be scored without sound",
                    path=self.path,
                    hint="Mux the generated audio into the video",
                )
            stream = container.streams.audio[0]
            start = _FirstTime()
            try:
                end = self._video_end()
                until = None if end is None else end + AUDIO_MARGIN
                frames = start.watch(_audio_until(container, stream, until, self.deadline))
                if replay is not None:
                    frames = replay(_frames_within_duration(frames, stream))
                samples = _resampled(frames)
            except av.FFmpegError as exc:
                raise DecodeError(
                    f"audio decoding failed ({_reason(exc)})", path=self.path, hint="Re-export the file"
                ) from exc
            if replay is None:
                samples = _trim_to_duration(samples, stream)
            _check_sound(self.path, samples)
            return _align_start(samples, (start.time or 0.0) - self._origin)

    def _video_end(self) -> float | None:
        """When the video stream ends, in seconds of the container's timeline: the latest end of its packets,
        demuxed but not decoded (headers may lie, packets are what gets decoded); None when none has a time."""
        with self._open() as container:
            return _packets_end(container.demux(container.streams.video[0]), self.deadline)


class _Damage:
    """Counts, over one pass, the frames the decoder was handed and those it lost or concealed."""

    def __init__(self) -> None:
        self.total = 0
        self.damaged = 0

    def frames(self, packets: Iterable[av.packet.Packet], deadline: Deadline) -> Iterator[av.video.frame.VideoFrame]:
        """Every frame the packets decode to; a rejected packet is skipped (one frame lost), the rest go on."""
        import av

        for packet in packets:
            deadline.check()
            try:
                frames = packet.decode()
            except av.FFmpegError:
                if packet.size:  # the empty packet that flushes the decoder holds no frame
                    self.total += 1
                    self.damaged += 1
                continue
            for frame in frames:
                self.total += 1
                self.damaged += bool(frame.is_corrupt)
                yield frame

    def check(self, path: Path, limit: float) -> None:
        """Fail the video when more than ``limit`` of its frames were damaged (all of them, when none decoded)."""
        if self.damaged and (self.damaged > limit * self.total or self.damaged == self.total):
            raise DecodeError(
                f"{self.damaged} of its {self.total} video frames are damaged (lost or concealed by the decoder, "
                f"{self.damaged / self.total:.1%}), over the limit max_corrupt_fraction = {limit:g}",
                path=path,
                hint="The file is damaged; re-export it, or raise the 'max_corrupt_fraction' setting to score the "
                "frames that decode",
                facts={"damaged_frames": self.damaged, "frames": self.total, "max_corrupt_fraction": limit},
            )


class _FirstTime:
    """Remembers the time of the first timed frame that streams past."""

    def __init__(self) -> None:
        self.time: float | None = None

    def watch(self, frames: Iterable[av.audio.frame.AudioFrame]) -> Iterator[av.audio.frame.AudioFrame]:
        for frame in frames:
            if self.time is None and frame.time is not None:
                self.time = frame.time
            yield frame


def _packets_end(packets: Iterable[av.packet.Packet], deadline: Deadline) -> float | None:
    """The latest time (seconds) at which one of ``packets`` ends; None when no packet has a time."""
    end = None
    for packet in packets:
        deadline.check()
        time = packet.pts if packet.pts is not None else packet.dts
        if time is not None and packet.time_base is not None:
            ends = float((time + (packet.duration or 0)) * packet.time_base)
            end = ends if end is None else max(end, ends)
    return end


def _audio_until(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    until: float | None,
    deadline: Deadline,
) -> Iterator[av.audio.frame.AudioFrame]:
    """The stream's frames, decoded packet by packet with the deadline checked before each, until a packet starts
    after ``until`` (seconds; None: to the end), where demuxing stops and the decoder gives what it still holds."""
    for packet in container.demux(stream):
        deadline.check()
        if (
            until is not None
            and packet.pts is not None
            and packet.time_base is not None
            and packet.pts * packet.time_base > until
        ):
            yield from stream.codec_context.decode(None)
            return
        yield from packet.decode()


def _resampled(frames: Iterable[av.audio.frame.AudioFrame]) -> np.ndarray:
    """16 kHz mono int16 through libswresample, flushed so that the last samples are not lost."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = [out.to_ndarray().reshape(-1) for frame in frames for out in resampler.resample(frame)]
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def open_video(path: str | Path, limits: VideoLimits = VideoLimits()) -> VideoSource:
    return VideoSource(path, limits)


def upright_filters(rotation: float) -> tuple[tuple[str, str], ...]:
    """The (filter, arguments) that turn frames upright, from ``frame.rotation`` (the display matrix's
    counter-clockwise angle, as ``av_display_rotation_get`` gives it); none for 0 or an angle that is
    not a multiple of 90 degrees, which ffmpeg does not correct either."""
    clockwise = round(-rotation) % 360
    return _UPRIGHT.get(clockwise, ())


def _check_size(info: VideoInfo, max_pixels: int) -> None:
    """Refuse, from the header alone, frames too large to decode safely."""
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise TooLargeError(
            f"frames are {info.width}x{info.height} ({pixels} pixels), over the limit of {max_pixels}",
            path=info.path,
            hint="Downscale the video, or raise the 'max_pixels' setting if the size is real",
            facts={"width": info.width, "height": info.height, "max_pixels": max_pixels},
        )


def _check_sound(path: Path, samples: np.ndarray) -> None:
    """Fail audio without sound: SyncNet still gives numbers for it, but they mean nothing, and a gate must not
    pass them by luck.

    Sound is judged per 40 ms frame (one video frame) by its RMS about the frame's own mean, so that a constant
    (a DC offset, digital silence) counts as nothing. A frame carries sound at :data:`SILENCE_FLOOR_DBFS` (-70
    dBFS, an RMS of 10.4 in int16 units) or more: 16-bit rounding and dither sit near -100 dBFS and a stray
    LSB or two near -90, while in recorded talking heads (measured here) the median frame is at -43 to -32 dBFS
    and even the pauses, room noise, at -62 to -55. The audio is silent when fewer frames carry sound than one
    SyncNet window spans (:data:`SOUND_FRAMES`, 0.2 s): a click is not speech. Audio shorter than that is not
    judged here: it is too short to score, and scoring says so.
    """
    levels = _frame_levels(samples)
    sound = int(np.count_nonzero(levels >= _FLOOR_RMS))
    if sound >= SOUND_FRAMES or len(levels) < SOUND_FRAMES:
        return
    loudest = float(levels.max())
    measured = (
        f"the loudest frame is at {20 * np.log10(loudest / _FULL_SCALE):.1f} dBFS"
        if loudest
        else "every frame is constant"
    )
    raise SilentAudioError(
        f"audio stream is silent: {sound} of its {len(levels)} frames of 40 ms reach the silence floor of "
        f"{SILENCE_FLOOR_DBFS:g} dBFS (RMS about the frame's mean; {measured}), and lip sync needs sound in at least "
        f"{SOUND_FRAMES} (one SyncNet window)",
        path=path,
        hint="Check that the generated speech was muxed, not an empty or near-silent track",
        facts={
            "samples": int(samples.size),
            "frames": len(levels),
            "sound_frames": sound,
            "floor_dbfs": SILENCE_FLOOR_DBFS,
        },
    )


def _frame_levels(samples: np.ndarray) -> np.ndarray:
    """RMS of each 40 ms frame about its own mean (a last partial frame on its own samples), in int16 units;
    computed in chunks, so that memory stays small for an hour of audio."""
    whole = len(samples) - len(samples) % SAMPLES_PER_FRAME
    frames = samples[:whole].reshape(-1, SAMPLES_PER_FRAME)
    levels = [
        frames[at : at + _LEVEL_CHUNK].astype(np.float64).std(axis=1) for at in range(0, len(frames), _LEVEL_CHUNK)
    ]
    if whole < len(samples):
        levels.append(np.array([samples[whole:].astype(np.float64).std()]))
    return np.concatenate(levels) if levels else np.zeros(0)


def batched(items: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Stack consecutive arrays into batches of ``size`` (the last may be shorter)."""
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _probe(path: Path, container: av.container.InputContainer) -> VideoInfo:
    if container.format.name.endswith(_IMAGE_FORMATS):
        raise NoVideoStreamError(
            f"is a still image ({container.format.name}), not a video",
            path=path,
            hint="Score a video file, not an audio or image file",
        )
    if not container.streams.video:
        raise NoVideoStreamError(
            "has no video stream", path=path, hint="Score a video file, not an audio or image file"
        )
    video = container.streams.video[0]
    if video.codec_context is None or not video.codec_context.width or not video.codec_context.height:
        raise UnreadableError(
            "has a video stream whose codec or frame size cannot be read",
            path=path,
            hint="The file is damaged or truncated (or uses a codec this FFmpeg lacks); re-export it",
        )
    audio = container.streams.audio[0].codec_context if container.streams.audio else None  # None: codec unknown
    rate = video.average_rate or video.guessed_rate
    return VideoInfo(
        path=path,
        width=video.codec_context.width,
        height=video.codec_context.height,
        codec=video.codec_context.name,
        source_fps=float(rate) if rate else None,
        duration=_duration(container, video),
        audio_codec=audio.name if audio else None,
        audio_rate=audio.sample_rate if audio else None,
        audio_channels=audio.channels if audio else None,
    )


def _duration(container: av.container.InputContainer, video: av.stream.Stream) -> float | None:
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return None if container.duration is None else container.duration / 1_000_000


def _origin(container: av.container.InputContainer) -> float:
    """Seconds of the container's first timestamp: time 0 of both output streams."""
    return 0.0 if container.start_time is None else container.start_time / 1_000_000


def _graph(
    stream: av.video.stream.VideoStream, pix_fmt: str, upright: tuple[tuple[str, str], ...], *head: tuple[str, str]
) -> av.filter.Graph:
    """Source frames -> ``head`` filters -> upright -> ``pix_fmt``."""
    import av.filter

    graph = av.filter.Graph()
    chain = [graph.add_buffer(template=stream)]
    chain += [graph.add(name, args) for name, args in (*head, *upright)]
    chain += [graph.add("format", pix_fmt), graph.add("buffersink")]
    for before, after in itertools.pairwise(chain):
        before.link_to(after)
    graph.configure()
    return graph


def _avi_frames(
    container: av.container.InputContainer, packets: Iterator[av.packet.Packet], decode: _Decode, pix_fmt: str
) -> Iterator[tuple[av.video.frame.VideoFrame, int]]:
    """The frames :class:`AviTimeline` keeps, converted one by one, with their slots. A frame without a timestamp
    is dropped, as the command line drops it."""
    stream = container.streams.video[0]
    clock = stream_clock(container, stream)
    durations = _Durations(clock.nominal)
    timeline = AviTimeline(clock)
    graph = None
    for frame in decode(durations.watch(packets)):
        if graph is None:
            graph = _graph(stream, pix_fmt, upright_filters(frame.rotation))
        duration = durations.of(frame)
        slot = None if frame.pts is None else timeline.place(frame.pts, duration)
        if slot is not None:
            graph.push(frame)
            yield graph.vpull(), slot


class _Durations:
    """Each frame's duration in ticks as the reference's ffmpeg reads it: its packet's (0: none), remembered by
    timestamp as the packets stream past, or ``nominal`` for every frame."""

    def __init__(self, nominal: int | None) -> None:
        self._nominal = nominal
        self._by_pts: dict[int, int] = {}

    def watch(self, packets: Iterable[av.packet.Packet]) -> Iterator[av.packet.Packet]:
        for packet in packets:
            if self._nominal is None and packet.pts is not None:
                self._by_pts[packet.pts] = packet.duration or 0
            yield packet

    def of(self, frame: av.video.frame.VideoFrame) -> int:
        if self._nominal is not None:
            return self._nominal
        return self._by_pts.pop(frame.pts, 0) if frame.pts is not None else 0


def _checked(frames: Iterator[T], deadline: Deadline) -> Iterator[T]:
    """``frames``, with the deadline checked before each (one source frame may fill many slots)."""
    for frame in frames:
        deadline.check()
        yield frame


def _drain(graph: av.filter.Graph, deadline: Deadline) -> Iterator[av.video.frame.VideoFrame]:
    """The frames the graph has ready. The deadline is checked per frame: one source frame may become
    millions at 25 fps (a corrupt header claiming a frame rate of 1 per day), with no packet in between."""
    import av

    while True:
        deadline.check()
        try:
            yield graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return


def _trim_to_duration(samples: np.ndarray, stream: av.audio.stream.AudioStream) -> np.ndarray:
    """Drop the encoder's trailing padding, which the decoder leaves in, past the stream's duration.

    Only an excess that padding can explain (under 100 ms) is trimmed: a container whose duration field
    is wrong must not cut real sound.
    """
    if stream.duration is None or stream.time_base is None:
        return samples
    expected = round(Fraction(stream.duration) * stream.time_base * SAMPLE_RATE)
    return samples[:expected] if 0 < len(samples) - expected < _MAX_PADDING else samples


def _frames_within_duration(
    frames: Iterable[av.audio.frame.AudioFrame], stream: av.audio.stream.AudioStream
) -> Iterator[av.audio.frame.AudioFrame]:
    """Source frames cut at the stream's duration, as ffmpeg's decoder hands them to the reference's MP3 encoder.

    The rule of :func:`_trim_to_duration` at the source rate, before encoding, so that the encoder's own
    priming and padding survive as in the reference's AVI. Frames past the duration are held back (at most
    100 ms of them); more than that is real sound and passes untouched.
    """
    if stream.duration is None or stream.time_base is None or not stream.rate:
        yield from frames
        return
    expected = round(Fraction(stream.duration) * stream.time_base * stream.rate)
    remaining = iter(frames)
    seen = 0
    held: list[av.audio.frame.AudioFrame] = []
    for frame in remaining:
        if not held and seen + frame.samples <= expected:
            seen += frame.samples
            yield frame
            continue
        held.append(frame)
        if seen + sum(f.samples for f in held) - expected >= stream.rate // 10:
            break  # real sound past the duration: nothing is cut
    else:
        if held and expected > seen:
            yield _head(held[0], expected - seen)
        return
    yield from held
    yield from remaining


def _head(frame: av.audio.frame.AudioFrame, samples: int) -> av.audio.frame.AudioFrame:
    import av

    kept = av.AudioFrame.from_ndarray(
        frame.to_ndarray()[..., :samples], format=frame.format.name, layout=frame.layout.name
    )
    kept.sample_rate = frame.sample_rate
    return kept


def _align_start(samples: np.ndarray, start: float) -> np.ndarray:
    """Pad silence for audio that starts late, as ``-async 1`` does; drop audio from before time 0."""
    shift = round(start * SAMPLE_RATE)
    if shift > 0:
        return np.concatenate([np.zeros(shift, np.int16), samples])
    return samples[-shift:] if shift < 0 else samples


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
