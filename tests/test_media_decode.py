"""Decoding: libavfilter's fps=25 selection, 16 kHz mono int16 audio, containers and codecs, errors."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fixtures.indexed import IndexedClip, read_index
from fixtures.media import ClipSpec, write_clip
from pytest_lipsync.errors import NoAudioStreamError, NotFoundError, NoVideoStreamError, UnreadableError
from pytest_lipsync.media.decode import open_video


def write_indexed(path: Path, times: list[float]) -> None:
    """A 30 fps Matroska video whose frame j shows j (``fixtures.indexed``), at the given times (seconds)."""
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
    from fixtures.media import speech

    path = write_clip(tmp_path / "exact.mkv", ClipSpec(seconds=1.0, seed=4))
    np.testing.assert_array_equal(open_video(path).audio(), speech(1.0, 16000, 1, seed=4)[0])


def test_stereo_is_downmixed_to_the_mean_of_the_channels(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "stereo.mkv", ClipSpec(seconds=1.0, audio_channels=2, seed=5))
    from fixtures.media import speech

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


def test_audio_only_and_video_only_files_say_which_stream_is_missing(tmp_path: Path) -> None:
    with pytest.raises(NoVideoStreamError, match="has no video stream"):
        open_video(write_clip(tmp_path / "sound.mkv", ClipSpec(seconds=0.5, video=False)))
    silent = open_video(write_clip(tmp_path / "silent.mkv", ClipSpec(seconds=0.5, audio=False)))
    with pytest.raises(NoAudioStreamError, match="silent.mkv: has no audio stream"):
        silent.audio()
