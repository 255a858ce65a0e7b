"""The pipeline protocol's lossy round trips (PROTOCOL 1.1), replayed in memory.

What the reference gets from disk is checked against PyAV writing the same file: the MP3 track of an AVI keeps
the codec's priming (the container has no field for it), which the in-memory replay must keep too.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pytest_lipsync.media.decode import open_video
from pytest_lipsync.media.reencode import (
    MPEG4_PIX_FMT,
    XvidRoundTrip,
    leading_repeats,
    mp3_round_trip,
    mpeg4_round_trip,
)
from pytest_lipsync.synthetic.clips import ClipSpec, speech
from tests.conftest import MakeClip

RATE = 44100
MP3_PRIMING = 1105  # LAME's encoder delay (576) + the decoder's (529), in samples at the source rate


def audio_frames(samples: np.ndarray, rate: int) -> list[av.AudioFrame]:
    frames = []
    for start in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, start : start + 1024]), format="s16p", layout="stereo"
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        frames.append(frame)
    return frames


def through_avi(samples: np.ndarray, rate: int) -> np.ndarray:
    """What ffmpeg reads back from an AVI with an MP3 track (libmp3lame defaults), muxed by PyAV in memory."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="avi") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "stereo"
        for frame in audio_frames(samples, rate):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


def test_mp3_replay_equals_the_avi_track_priming_included() -> None:
    samples = np.stack([speech(1.0, RATE, 1, seed)[0] for seed in (1, 2)])
    expected = through_avi(samples, RATE)
    replayed = np.concatenate([frame.to_ndarray() for frame in mp3_round_trip(audio_frames(samples, RATE))], axis=1)
    np.testing.assert_array_equal(replayed, expected)
    assert replayed.shape[1] > samples.shape[1] + MP3_PRIMING
    lag = np.argmax(np.correlate(replayed[0, :8000].astype(np.float64), samples[0, 2000:6000].astype(np.float64)))
    assert lag - 2000 == MP3_PRIMING


def test_mp3_audio_of_a_clip_is_delayed_by_the_priming(make_clip: MakeClip) -> None:
    source = open_video(make_clip("reencode_pcm.mkv", ClipSpec(seconds=1.0, seed=31)))
    clean, mp3 = source.audio().astype(np.float64), source.audio(replay=mp3_round_trip).astype(np.float64)
    assert len(mp3) >= len(clean) + MP3_PRIMING  # the clip's audio is 16 kHz already
    delayed = mp3[MP3_PRIMING : MP3_PRIMING + len(clean)]
    assert np.corrcoef(delayed, clean)[0, 1] > 0.99
    assert np.corrcoef(mp3[: len(clean)], clean)[0, 1] < 0.5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_mpeg4_q2_round_trip_keeps_every_frame_nearly_intact(make_clip: MakeClip) -> None:
    source = open_video(make_clip("reencode_video.mp4", ClipSpec(seconds=1.0, width=128, height=96, seed=32)))
    originals = [frame.to_ndarray(format="bgr24") for frame in source.decoded(MPEG4_PIX_FMT)]
    replayed = [frame.to_ndarray(format="bgr24") for frame in mpeg4_round_trip(source.decoded(MPEG4_PIX_FMT))]
    assert len(replayed) == len(originals) == 25
    assert all(35 < psnr(a, b) < 100 for a, b in zip(originals, replayed, strict=True))


def test_xvid_round_trip_returns_every_crop_and_deletes_its_file() -> None:
    rng = np.random.default_rng(0)
    crops = np.repeat(rng.integers(40, 200, (12, 28, 28, 3), dtype=np.uint8), 8, axis=1).repeat(8, axis=2)
    replay = XvidRoundTrip()
    path: Path = replay.path
    replay.write(crops[:5])
    replay.write(crops[5:])
    back = list(replay.read_back())
    assert not path.exists()
    assert len(back) == 12 and back[0].shape == (224, 224, 3)
    assert all(20 < psnr(a, b) < 60 for a, b in zip(crops, back, strict=True))


def test_a_discarded_xvid_replay_leaves_no_file() -> None:
    replay = XvidRoundTrip()
    replay.write(np.zeros((2, 224, 224, 3), np.uint8))
    replay.discard()
    assert not replay.path.exists()


@pytest.mark.parametrize("rate", [16000, 44100])
def test_mp3_replay_keeps_the_source_rate(rate: int) -> None:
    samples = np.stack([speech(0.3, rate, 1, 5)[0]] * 2)
    (first, *_) = mp3_round_trip(audio_frames(samples, rate))
    assert first.sample_rate == rate and first.layout.nb_channels == 2


@pytest.mark.parametrize(
    ("rate", "repeats"), [(8000, 4), (12000, 3), (16000, 2), (22050, 2), (32000, 1), (44100, 1), (48000, 1)]
)
def test_leading_repeats_are_what_ffmpeg_9_wrote_into_the_reference_avi(rate: int, repeats: int) -> None:
    """Measured outside the project: ``ffmpeg -qscale:v 2 -async 1 -r 25 video.avi`` gave its second frame pts
    1 + repeats, and the constant-rate JPEG extraction filled the gap (with the first frame in all its slots but
    the last, which shows the second frame)."""
    assert leading_repeats(rate) == repeats
