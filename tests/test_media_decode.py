"""Decoding: libavfilter's fps=25 selection, 16 kHz mono int16 audio, containers and codecs, errors."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pytest_lipsync.errors import NoAudioStreamError, NotFoundError, NoVideoStreamError, UnreadableError
from pytest_lipsync.media.decode import open_video
from pytest_lipsync.media.reencode import mp3_round_trip
from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
from tests.indexed import IndexedClip, read_index


def write_indexed(path: Path, times: list[float]) -> None:
    """A 30 fps Matroska video whose frame j shows j (``tests.indexed``), at the given times (seconds)."""
    IndexedClip(".mkv", Fraction(30), Fraction(1, 1000), tuple(round(moment * 1000) for moment in times)).write(path)


def nearest_slots(path: Path) -> list[int]:
    """fps=25 selection, written independently: slot n shows the last frame whose time, rounded half up to
    the 25 fps grid, is <= n; slots before the first frame repeat it; slots run to the rounded end time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.duration) for p in container.demux(stream) if p.pts is not None)
        base = stream.time_base
    ticks = [math.floor(Fraction(pts) * base * 25 + Fraction(1, 2)) for pts, _ in packets]
    last_pts, last_duration = packets[-1]
    end = math.floor(Fraction(last_pts + last_duration) * base * 25 + Fraction(1, 2))
    return [max([j for j, tick in enumerate(ticks) if tick <= n] or [0]) for n in range(end)]


@pytest.mark.parametrize(
    "times",
    [
        [j / 30 for j in range(60)],  # constant 30 fps
        [j / 24 for j in range(48)],  # 24 fps: some slots repeat a frame
        [0.0, 0.03, 0.1, 0.11, 0.2, 0.27, 0.5, 0.52, 0.6, 0.61, 0.62, 0.9, 1.0, 1.3, 1.33, 1.5],  # variable
    ],
    ids=["30fps", "24fps", "vfr"],
)
def test_frames_are_libavfilter_fps25_selection(times: list[float], tmp_path: Path) -> None:
    path = tmp_path / "indexed.mkv"
    write_indexed(path, times)
    shown = [read_index(frame) for batch in open_video(path).frames(batch_size=7) for frame in batch]
    assert shown == nearest_slots(path)


def test_25fps_input_is_the_identity(tmp_path: Path) -> None:
    path = tmp_path / "indexed.mkv"
    write_indexed(path, [j / 25 for j in range(40)])
    shown = [read_index(frame) for batch in open_video(path).frames() for frame in batch]
    assert shown == list(range(40))


@pytest.mark.parametrize(
    "name, spec",
    [
        ("aac_44k_stereo.mp4", ClipSpec(seconds=1.5, audio_rate=44100, audio_channels=2)),
        ("pcm_16k.mkv", ClipSpec(seconds=1.5)),
        ("mp3_22k.mkv", ClipSpec(seconds=1.5, audio_rate=22050, audio_codec="libmp3lame")),
        ("hevc_48k.mkv", ClipSpec(seconds=1.2, fps=30, audio_rate=48000, video_codec="libx265")),
        ("mjpeg_pcm.mov", ClipSpec(seconds=1.0, video_codec="mjpeg")),
        ("mpeg4_vfr.mp4", ClipSpec(pts=[0.0, 0.05, 0.07, 0.2, 0.4, 0.41, 0.8, 1.0, 1.1], video_codec="mpeg4")),
    ],
)
def test_containers_and_codecs_decode_to_the_protocol_streams(name: str, spec: ClipSpec, tmp_path: Path) -> None:
    path = write_clip(tmp_path / name, spec)
    source = open_video(path)
    batches = list(source.frames(batch_size=16))
    assert all(b.dtype == np.uint8 and b.shape[1:] == (spec.height, spec.width, 3) for b in batches)
    audio = source.audio()
    assert audio.dtype == np.int16 and audio.ndim == 1
    # Within one video frame; MP3 has no gapless metadata here, so the encoder's priming and padding
    # (about 1,100 + 500 samples at 22.05 kHz) stay in the stream, as they do for ffmpeg itself.
    tolerance = 1700 if spec.audio_codec == "libmp3lame" else 640
    assert abs(len(audio) - spec.seconds * 16000) <= tolerance
    assert np.abs(audio.astype(np.int32)).max() > 3000  # sound, not silence, and not normalised to [-1, 1]
    if spec.pts is None:
        assert abs(sum(len(b) for b in batches) - spec.seconds * 25) <= 1


def test_exact_pcm_audio_is_passed_through_untouched(tmp_path: Path) -> None:
    from pytest_lipsync.synthetic.clips import speech

    path = write_clip(tmp_path / "exact.mkv", ClipSpec(seconds=1.0, seed=4))
    np.testing.assert_array_equal(open_video(path).audio(), speech(1.0, 16000, 1, seed=4)[0])


def test_stereo_is_downmixed_to_the_mean_of_the_channels(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "stereo.mkv", ClipSpec(seconds=1.0, audio_channels=2, seed=5))
    from pytest_lipsync.synthetic.clips import speech

    mono = speech(1.0, 16000, 1, seed=5)[0].astype(np.int32)
    np.testing.assert_allclose(open_video(path).audio(), mono, atol=1)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="missing.mp4: no such file"):
        open_video(tmp_path / "missing.mp4")


def test_directory_and_garbage_are_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableError, match="is a directory"):
        open_video(tmp_path)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(UnreadableError, match=r"garbage.mp4: cannot be opened as a video .* re-export"):
        open_video(garbage)


@pytest.mark.parametrize("what", ["a FIFO", "a character device"])
def test_only_regular_files_are_opened(what: str, make_fifo: Callable[[str], Path], tmp_path: Path) -> None:
    """Reading a FIFO waits for a writer (forever, for a stray one) and a device may never end: refused unread."""
    if what == "a FIFO":
        path = make_fifo("pipe.mp4")
    else:
        path = tmp_path / "null.mp4"
        path.symlink_to(os.devnull)
    with pytest.raises(
        UnreadableError, match=rf"{re.escape(str(path))}: is {what}, not a regular file\. .*copy the video to a file"
    ):
        open_video(path)


def test_every_pass_opens_only_a_regular_file(make_fifo: Callable[[str], Path], tmp_path: Path) -> None:
    """A file replaced by a FIFO after the header was read is refused by the next pass, not waited on."""
    source = open_video(write_clip(tmp_path / "swapped.mkv", ClipSpec(seconds=0.5)))
    source.path.unlink()
    make_fifo("swapped.mkv")
    with pytest.raises(UnreadableError, match="swapped.mkv: is a FIFO, not a regular file"):
        source.audio()
    with pytest.raises(UnreadableError, match="swapped.mkv: is a FIFO, not a regular file"):
        next(source.frames())


def test_audio_only_and_video_only_files_say_which_stream_is_missing(tmp_path: Path) -> None:
    with pytest.raises(NoVideoStreamError, match="has no video stream"):
        open_video(write_clip(tmp_path / "sound.mkv", ClipSpec(seconds=0.5, video=False)))
    silent = open_video(write_clip(tmp_path / "silent.mkv", ClipSpec(seconds=0.5, audio=False)))
    with pytest.raises(NoAudioStreamError, match="silent.mkv: has no audio stream"):
        silent.audio()


# ---------------------------------------------------------------- audio is bounded by the video


def long_sound(path: Path, video_seconds: float, audio_seconds: float) -> np.ndarray:
    """Write ``video_seconds`` of MJPEG video and ``audio_seconds`` of exact 16 kHz PCM speech; the samples."""
    from pytest_lipsync.synthetic.clips import speech

    samples = np.tile(speech(1.0, 16000, 1, seed=8)[0], math.ceil(audio_seconds))[: round(audio_seconds * 16000)]
    with av.open(str(path), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuvj420p"
        audio = out.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for index in range(round(video_seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index, np.uint8), format="bgr24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, len(samples), 16000):  # packets of one second
            sound = av.AudioFrame.from_ndarray(samples[None, start : start + 16000], format="s16", layout="mono")
            sound.sample_rate, sound.pts = 16000, start
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return samples


def test_audio_much_longer_than_the_video_is_decoded_only_to_the_videos_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two seconds of video with ten minutes of sound: decoding stops one second (AUDIO_MARGIN) past the video's end,
    instead of holding ten minutes of samples; what is decoded is exactly the stream's first samples."""
    from pytest_lipsync.media import decode

    path = tmp_path / "long_tail.mkv"
    written = long_sound(path, video_seconds=2.0, audio_seconds=600.0)
    decoded: list[int] = []
    real = decode._resampled
    monkeypatch.setattr(
        decode,
        "_resampled",
        lambda frames: real(f for f in frames if decoded.append(f.samples) is None),  # type: ignore[func-returns-value]  # records each frame, keeps all
    )
    audio = open_video(path).audio()
    assert 2.0 * 16000 <= len(audio) <= (2.0 + decode.AUDIO_MARGIN + 1.0) * 16000  # + one packet of a second
    np.testing.assert_array_equal(audio, written[: len(audio)])
    assert sum(decoded) == len(audio)  # decoding stopped there: nothing was decoded to be thrown away


def test_bounding_the_audio_changes_no_sample_the_video_covers(tmp_path: Path) -> None:
    """Reference fidelity re-encodes the sound as MP3: cut one second past the video's end, it gives the same
    samples over the video as the whole track does."""
    from pytest_lipsync.media.decode import AUDIO_MARGIN

    long_sound(tmp_path / "long.mkv", video_seconds=2.0, audio_seconds=60.0)
    long_sound(tmp_path / "whole.mkv", video_seconds=2.0, audio_seconds=2.0 + AUDIO_MARGIN - 0.1)  # not cut
    for mp3 in (False, True):
        cut, whole = (
            open_video(tmp_path / name).audio(replay=mp3_round_trip if mp3 else None)
            for name in ("long.mkv", "whole.mkv")
        )
        assert len(cut) <= (2.0 + AUDIO_MARGIN + 1.0) * 16000 + 2400  # one packet of a second, MP3 priming
        np.testing.assert_array_equal(cut[: 2 * 16000 + 1600], whole[: 2 * 16000 + 1600])


def test_the_audio_pass_checks_the_deadline(tmp_path: Path) -> None:
    import time

    from pytest_lipsync.errors import ScoringTimeoutError
    from pytest_lipsync.settings import VideoLimits

    long_sound(tmp_path / "late.mkv", video_seconds=1.0, audio_seconds=1.0)
    late = open_video(tmp_path / "late.mkv", VideoLimits(timeout=5.0, started=time.monotonic() - 10))
    with pytest.raises(ScoringTimeoutError, match="over the time limit of 5 s"):
        late.audio()
