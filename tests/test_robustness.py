"""Every bad input gets a precise error kind, a message naming the file with a hint, or sane numbers.

Each case builds its input from a tiny generated clip (or a mutation of one) and scores it with the
session's cropped, clean, CPU :class:`Scorer`. Decisions this module pins down:

* **Truncated MP4** (cut at 10, 50, 90 %): PyAV writes the ``moov`` index at the end, so every cut loses
  it: 10 % and 50 % cannot be opened and 90 % leaves a video stream without codec parameters; all are
  ``unreadable``. In a fast-start MP4 (index first) the index promises packets the file lacks: a cut
  through a packet the decoder is handed fails the whole video with ``decode_error`` (10 % and 90 % here),
  never a score of garbage; a cut that leaves only whole packets (50 % here) scores the decodable prefix,
  its windows bounded by the shorter of the surviving streams. The cut packet counts as a damaged frame
  (below), which in a clip of one second is over the 1 % limit.
* **Damaged packets in the middle**: the frames that decode are scored and ``damaged_frames`` counts the
  frames lost (a packet the decoder rejects) or concealed (flagged ``is_corrupt``), once per video however
  many passes decode it; above ``max_corrupt_fraction`` of the frames the video fails with ``decode_error``.
* **Timestamps that go backwards** score, as ffmpeg's fps filter orders them (see the test's docstring).
* **Time limit**: past ``timeout`` a video fails with ``timeout`` between two batches (one forward pass at
  most; the audio pass packet by packet); a worker of ``lipsync score --workers N`` stuck in native code at
  twice the limit is killed, the others go on.
* **A PNG renamed .mp4** opens as a one-picture stream: ``no_video_stream`` (a still image, not a video).
* **Audio shorter or longer than the video**: as in the reference, the shorter decides: the track has
  ``min(frames, audio_frames) - 5`` windows, and the result records both lengths (``frames`` for the
  video, ``audio_frames`` for the sound, in 25 fps frames), so the report says which one was shorter.
* **Silent audio** fails with ``silent_audio``: numbers from silence mean nothing, and a gate must not pass
  them. Silence is fewer than five 40 ms frames (one SyncNet window) whose RMS about their own mean reaches
  -70 dBFS: digital silence, a DC offset, a lone sample or click, sound at -90 dBFS; speech at -50 dBFS scores.
* **Non-finite scores** (weights that overflow float32) fail with ``non_finite``; non-finite weights are
  refused when they load.
* **FIFOs, devices, sockets** named like videos (or given as ground truth) fail with ``unreadable``, unread.
* **Several audio streams**: the first is scored, the others are ignored.
* **Fail closed**: whatever the kind (every :class:`VideoError` subclass), an error never passes the
  gate, whatever the thresholds; only ``allow`` naming that kind for that video turns it into an xfail.
* **Rotation** (display matrix, as phones write it): frames come out upright, as ``ffmpeg`` gives them.
  PyAV cannot write the matrix, so the test patches the ``tkhd`` matrix of a written MP4.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import pytest

from pytest_lipsync.config.resolution import video_error_kinds
from pytest_lipsync.gate.rules import GateRules, Override, Thresholds, judge
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.media.decode import SAMPLE_RATE, VideoSource, open_video, upright_filters
from pytest_lipsync.results import RunRecord, ScoreError, VideoScore
from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
from tests.conftest import MakeClip, Scorers

if TYPE_CHECKING:
    from pytest_lipsync.scoring.scorer import Scorer

TINY = ClipSpec(seconds=1.0, width=64, height=64)
# Sources to remux: MJPEG needs no extradata, which PyAV's stream templates do not carry over.
REMUXABLE = ClipSpec(seconds=1.0, width=64, height=64, video_codec="mjpeg")
Build = Callable[[Path], Path]
pytest_plugins = ["pytester"]


def clip(name: str, **changes: object) -> Build:
    """A builder for a tiny clip with ``changes`` to :data:`TINY`."""
    return lambda folder: write_clip(folder / name, ClipSpec(**{**TINY.__dict__, **changes}))


def truncated(fraction: float, *, faststart: bool = False) -> Build:
    """The first ``fraction`` of the bytes of a tiny MP4 (index at the end, or first with ``faststart``)."""

    def build(folder: Path) -> Path:
        whole = folder / "whole.mp4"
        if faststart:
            source = write_clip(folder / "src.mkv", REMUXABLE)
            remux(whole, source, [source], faststart=True)
        else:
            write_clip(whole, TINY)
        data = whole.read_bytes()
        path = folder / f"cut{round(fraction * 100)}.mp4"
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return build


def remux(path: Path, video_from: Path, audio_from: list[Path], *, faststart: bool = False) -> Path:
    """Copy the video of ``video_from`` and the first audio stream of each of ``audio_from`` into ``path``."""
    inputs = [av.open(str(source)) for source in dict.fromkeys([video_from, *audio_from])]
    by_path = dict(zip(dict.fromkeys([video_from, *audio_from]), inputs))
    wanted = [by_path[video_from].streams.video[0]] + [by_path[source].streams.audio[0] for source in audio_from]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        copies = {stream: out.add_stream_from_template(stream) for stream in wanted}
        for container in inputs:
            for packet in container.demux([s for s in wanted if s.container is container]):
                if packet.dts is not None:
                    packet.stream = copies[packet.stream]  # type: ignore[index]  # packets of the demuxed wanted streams
                    out.mux(packet)
    for container in inputs:
        container.close()
    return path


def mixed_lengths(video_seconds: float, audio_seconds: float) -> Build:
    def build(folder: Path) -> Path:
        video = write_clip(
            folder / "v.mkv", ClipSpec(**{**REMUXABLE.__dict__, "seconds": video_seconds, "audio": False})
        )
        audio = write_clip(
            folder / "a.mkv", ClipSpec(**{**REMUXABLE.__dict__, "seconds": audio_seconds, "video": False})
        )
        return remux(folder / "mixed.mkv", video, [audio])

    return build


def several_audio_streams(folder: Path) -> Path:
    speech = write_clip(folder / "speech.mkv", REMUXABLE)
    silence = write_clip(folder / "silence.mkv", ClipSpec(**{**REMUXABLE.__dict__, "silent": True, "video": False}))
    return remux(folder / "two_tracks.mkv", speech, [speech, silence])


def zero_bytes(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def random_bytes(folder: Path) -> Path:
    path = folder / "noise.mp4"
    path.write_bytes(np.random.default_rng(7).bytes(20_000))
    return path


def png_as_mp4(folder: Path) -> Path:
    import cv2

    path = folder / "picture.mp4"
    path.write_bytes(cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))[1].tobytes())
    return path


def claims_huge_frames(folder: Path) -> Path:
    """A raw YUV4MPEG2 file whose header claims 16000x12000 frames (192 M pixels), with 3 kB of data."""
    path = folder / "huge.y4m"
    path.write_bytes(b"YUV4MPEG2 W16000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(3000))
    return path


def rotated(folder: Path) -> Path:
    """A 64x32 MP4 whose left half is white, with a phone's ``rotate=90`` display matrix in its ``tkhd``."""
    path = folder / "portrait.mp4"
    picture = np.zeros((32, 64, 3), np.uint8)
    picture[:, :32] = 255
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for index in range(8):
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.index(identity, data.index(b"tkhd"))
    portrait = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(data[:at] + portrait + data[at + len(identity) :])
    return path


def with_sound(name: str, samples: np.ndarray) -> Build:
    """A one-second MJPEG clip whose sound is ``samples`` (16 kHz mono int16), stored as PCM: exactly those values."""

    def build(folder: Path) -> Path:
        from pytest_lipsync.synthetic.clips import face_frame

        path = folder / name
        with av.open(str(path), "w") as out:
            video = out.add_stream("mjpeg", rate=25)
            video.width, video.height, video.pix_fmt = 64, 64, "yuvj420p"
            audio = out.add_stream("pcm_s16le", rate=SAMPLE_RATE)
            audio.layout = "mono"
            for index in range(25):
                frame = av.VideoFrame.from_ndarray(face_frame(64, 64, 0.5, index), format="bgr24")
                frame.pts = index
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
            sound = av.AudioFrame.from_ndarray(samples.astype(np.int16)[None, :], format="s16", layout="mono")
            sound.sample_rate, sound.pts = SAMPLE_RATE, 0
            out.mux(audio.encode(sound))
            out.mux(audio.encode(None))
        return path

    return build


def one_sample(value: int) -> np.ndarray:
    samples = np.zeros(SAMPLE_RATE, np.int16)
    samples[SAMPLE_RATE // 2] = value
    return samples


def speech_at(dbfs: float) -> np.ndarray:
    """The synthetic speech scaled to an RMS of ``dbfs`` (over the whole second, pauses included)."""
    from pytest_lipsync.synthetic.clips import speech

    voice = speech(1.0, SAMPLE_RATE, 1, seed=3)[0].astype(np.float64)
    return np.round(voice * 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(voice**2)))


# case id -> (builder, kind, words the message must contain besides the file name)
FAILURES: dict[str, tuple[Build, str, str]] = {
    "missing": (lambda folder: folder / "missing.mp4", "not_found", "Check the path"),
    "directory": (lambda folder: folder, "unreadable", "is a directory"),
    "zero_bytes": (zero_bytes, "unreadable", "re-export"),
    "cut_10": (truncated(0.1), "unreadable", "re-export"),
    "cut_50": (truncated(0.5), "unreadable", "re-export"),
    "cut_90": (truncated(0.9), "unreadable", "re-export"),
    "faststart_cut_10": (truncated(0.1, faststart=True), "decode_error", "re-export"),
    "faststart_cut_90": (truncated(0.9, faststart=True), "decode_error", "re-export"),
    "random_bytes": (random_bytes, "unreadable", "re-export"),
    "png_as_mp4": (png_as_mp4, "no_video_stream", "not an audio or image file"),
    "audio_only": (clip("sound.mkv", video=False), "no_video_stream", "not an audio or image file"),
    "video_only": (clip("mute.mkv", audio=False), "no_audio_stream", "Mux the generated audio"),
    "fewer_frames_than_a_window": (clip("short.mkv", seconds=0.16), "too_short", "at least 0.24 s"),
    "silent_audio": (clip("hush.mkv", silent=True), "silent_audio", "Check that the generated speech"),
    "dc_offset_of_one": (with_sound("dc.mkv", np.ones(SAMPLE_RATE)), "silent_audio", "0 of its 25 frames of 40 ms"),
    "one_sample_of_one": (with_sound("lsb.mkv", one_sample(1)), "silent_audio", "floor of -70 dBFS"),
    "one_full_scale_click": (with_sound("click.mkv", one_sample(32767)), "silent_audio", "1 of its 25 frames of 40 ms"),
    "speech_at_-90_dBFS": (with_sound("whisper.mkv", speech_at(-90)), "silent_audio", "floor of -70 dBFS"),
    "header_claims_huge_frames": (claims_huge_frames, "too_large", "16000x12000 (192000000 pixels)"),
}

# case id -> builder of an input that must score
SCORED: dict[str, Build] = {
    "faststart_cut_50": truncated(0.5, faststart=True),
    "odd_size_ffv1": clip("odd.mkv", width=63, height=47, video_codec="ffv1"),
    "odd_size_mpeg4": clip("odd.avi", width=63, height=47),
    "10bit_hevc": clip("hevc10.mkv", video_codec="libx265", pix_fmt="yuv420p10le"),
    "10bit_ffv1": clip("ffv1_10.mkv", video_codec="ffv1", pix_fmt="yuv420p10le"),
    "444_x264": clip("full_chroma.mkv", pix_fmt="yuv444p"),
    "alpha_ffv1": clip("alpha.mkv", video_codec="ffv1", pix_fmt="yuva420p"),
    "alpha_png": clip("alpha.mov", video_codec="png", pix_fmt="rgba"),
    "stereo": clip("stereo.mkv", audio_channels=2),
    "5.1": clip("surround.mkv", audio_channels=6),
    **{f"{rate / 1000:g}kHz": clip(f"rate{rate}.mkv", audio_rate=rate) for rate in (8000, 22050, 44100, 48000, 96000)},
    "several_audio_streams": several_audio_streams,
    "quiet_speech_at_-50_dBFS": with_sound("quiet.mkv", speech_at(-50)),  # 20 dB above the silence floor
}


@pytest.mark.parametrize("case", FAILURES)
def test_bad_input_fails_with_its_kind_the_file_and_a_hint(case: str, scorers: Scorers, tmp_path: Path) -> None:
    build, kind, words = FAILURES[case]
    path = build(tmp_path)
    result = scorers().score(path)
    assert result.error is not None, f"{case} scored: {result.metrics}"
    assert (result.error.kind, result.metrics, result.tracks) == (kind, {}, ())
    assert str(path) in result.error.message and words in result.error.message


def test_unreadable_permissions_fail_as_unreadable(scorers: Scorers, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "locked.mkv", TINY)
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: a mode-000 file is still readable")
    error = scorers().score(path).error
    assert error is not None and error.kind == "unreadable"
    assert str(path) in error.message and "re-export" in error.message


def test_a_fifo_or_device_named_like_a_video_fails_unread_as_video_or_ground_truth(
    make_fifo: Callable[[str], Path], scorers: Scorers, tmp_path: Path
) -> None:
    good = write_clip(tmp_path / "good.mkv", TINY)
    device = tmp_path / "null.mp4"
    device.symlink_to(os.devnull)
    for path, what in ((make_fifo("pipe.mp4"), "a FIFO"), (device, "a character device")):
        video = scorers().score(path).error
        assert video is not None and video.kind == "unreadable"
        assert f"{path}: is {what}, not a regular file" in video.message
        truth = scorers().score(good, reference=path).error
        assert truth is not None and (truth.kind, truth.facts["reference_error"]) == (
            "reference_mismatch",
            "unreadable",
        )
        assert f"its reference {path} cannot be compared: is {what}, not a regular file" in truth.message


def test_lipsync_score_fails_a_fifo_matched_by_a_glob_and_scores_the_rest(
    make_fifo: Callable[[str], Path], syncnet_weights: Path, tmp_path: Path
) -> None:
    import glob
    import json

    from pytest_lipsync.cli.app import main

    write_clip(tmp_path / "good.mkv", TINY)
    fifo = make_fifo("pipe.mkv")
    out = tmp_path / "scores.json"
    matched = sorted(glob.glob(str(tmp_path / "*.mkv")))  # as the shell expands it
    args = ["score", *matched, "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu"]
    assert main([*args, "--offline", "--syncnet-weights", str(syncnet_weights), "--json", str(out), "-q"]) == 1
    errors = {Path(video["path"]).name: video["error"] for video in json.loads(out.read_text())["videos"]}
    assert errors["good.mkv"] is None
    assert (
        errors["pipe.mkv"]["kind"] == "unreadable"
        and f"{fifo}: is a FIFO, not a regular file" in errors["pipe.mkv"]["message"]
    )


@pytest.mark.parametrize("case", SCORED)
def test_unusual_but_valid_input_scores_sanely(case: str, scorers: Scorers, tmp_path: Path) -> None:
    result = scorers().score(SCORED[case](tmp_path))
    assert result.error is None, result.error
    assert 6 <= result.frames <= 25 and len(result.tracks) == 1
    assert 1 <= result.tracks[0].windows <= result.frames - 5
    assert all(math.isfinite(result.metrics[name]) for name in ("lse_d", "lse_c"))
    assert result.metrics["lse_d"] > 0


@pytest.mark.parametrize("rate, channels", [(8000, 1), (22050, 2), (44100, 6), (48000, 2), (96000, 1)])
def test_any_rate_and_layout_becomes_16khz_mono_of_the_same_length(rate: int, channels: int, tmp_path: Path) -> None:
    path = write_clip(
        tmp_path / "sound.mkv", ClipSpec(**{**TINY.__dict__, "audio_rate": rate, "audio_channels": channels})
    )
    audio = open_video(path).audio()
    assert abs(len(audio) - TINY.seconds * SAMPLE_RATE) <= SAMPLE_RATE // 25
    assert np.abs(audio.astype(np.int32)).max() > 3000


def test_the_first_of_several_audio_streams_is_scored(tmp_path: Path) -> None:
    audio = open_video(several_audio_streams(tmp_path)).audio()
    np.testing.assert_array_equal(audio, open_video(tmp_path / "speech.mkv").audio())


@pytest.mark.parametrize("video, audio", [(1.0, 0.4), (0.4, 1.0)], ids=["audio_shorter", "video_shorter"])
def test_the_shorter_stream_decides_the_windows(video: float, audio: float, scorers: Scorers, tmp_path: Path) -> None:
    result = scorers().score(mixed_lengths(video, audio)(tmp_path))
    assert result.error is None, result.error
    assert abs(result.frames - video * 25) <= 1  # the video's own length (the last frame's duration is a guess)
    assert result.audio_frames == round(audio * 25)
    assert result.tracks[0].windows == min(result.frames, result.audio_frames) - 5


def test_rotation_metadata_turns_frames_upright(tmp_path: Path) -> None:
    frames = np.concatenate(list(open_video(rotated(tmp_path)).frames()))
    assert frames.shape[1:] == (64, 32, 3)  # portrait, as ffmpeg shows it
    assert frames[:, :28].mean() > 200 and frames[:, 36:].mean() < 50  # the left half turned to the top


@pytest.mark.parametrize(
    "rotation, filters",
    [
        (0.0, ()),
        (-90.0, (("transpose", "clock"),)),
        (90.0, (("transpose", "cclock"),)),
        (180.0, (("hflip", ""), ("vflip", ""))),
        (-180.0, (("hflip", ""), ("vflip", ""))),
        (45.0, ()),
    ],
)
def test_upright_filters_undo_the_display_matrix(rotation: float, filters: tuple[tuple[str, str], ...]) -> None:
    assert upright_filters(rotation) == filters


def test_frames_over_max_pixels_are_refused_before_decoding(
    syncnet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_lipsync import Settings
    from pytest_lipsync.media.decode import VideoSource
    from pytest_lipsync.scoring.scorer import Scorer

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a too large video was decoded")

    monkeypatch.setattr(VideoSource, "decoded", no_decoding)
    monkeypatch.setattr(VideoSource, "audio", no_decoding)
    path = write_clip(tmp_path / "big.mkv", TINY)
    settings = Settings(
        protocol="cropped", fidelity="clean", device="cpu", syncnet_weights=str(syncnet_weights), offline=True
    )
    error = Scorer(settings.replace(max_pixels=1000)).score(path).error
    assert error is not None and error.kind == "too_large"
    assert error.facts == {"width": 64, "height": 64, "max_pixels": 1000}
    assert all(word in error.message for word in (str(path), "64x64", "4096 pixels", "limit of 1000", "'max_pixels'"))


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_pixels_must_be_a_positive_integer(value: object) -> None:
    from pytest_lipsync import Settings
    from pytest_lipsync.errors import ConfigError

    with pytest.raises(ConfigError, match="setting 'max_pixels'"):
        Settings(max_pixels=value)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test


@pytest.mark.parametrize("kind", sorted(video_error_kinds()))
def test_no_error_kind_passes_the_gate_unless_allowed_by_name(kind: str) -> None:
    """Fail closed: even with numbers that would pass and every other kind allowed, an error fails."""
    error = ScoreError(kind, f"clip.mp4: {kind}. Do something")
    score = VideoScore(path="clip.mp4", metrics={"lse_d": 1.0, "lse_c": 12.0}, error=error)
    lenient = GateRules(thresholds=Thresholds(lse_d_max=99.0, lse_c_min=0.0), allow=tuple(video_error_kinds() - {kind}))
    elsewhere = dataclasses.replace(lenient, overrides=(Override("other/*.mp4", allow=(kind,)),))
    for rules in (GateRules(), lenient, elsewhere):
        verdict = judge(score, "clip.mp4", rules.for_video("clip.mp4"))
        assert verdict.outcome == "failed" and verdict.reason.startswith(f"{kind}: clip.mp4")
    allowed = judge(score, "clip.mp4", dataclasses.replace(lenient, allow=(kind,)).for_video("clip.mp4"))
    assert allowed.outcome == "xfailed" and f"[{kind!r}]" in allowed.reason


def test_the_new_kinds_are_error_kinds() -> None:
    assert {"silent_audio", "too_large", "unreadable", "decode_error"} <= video_error_kinds()


# ---------------------------------------------------------------- damage in the middle of a file


def damaged(name: str, video_codec: str, packets: tuple[int, ...], seconds: float = 1.0, **changes: Any) -> Build:
    """A tiny clip whose video packets number ``packets`` (demux order) are noise after their first 8 bytes,
    as a bad sector or a broken upload leaves them; the container around them is intact."""

    def build(folder: Path) -> Path:
        spec = ClipSpec(**{**TINY.__dict__, "seconds": seconds, "video_codec": video_codec, **changes})
        path = write_clip(folder / name, spec)
        with av.open(str(path)) as container:
            spans = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
        data = bytearray(path.read_bytes())
        noise = np.random.default_rng(3)
        for pos, size in (spans[k] for k in packets):
            data[pos + 8 : pos + size] = noise.bytes(size - 8)
        path.write_bytes(bytes(data))
        return path

    return build


def scorer_with(syncnet_weights: Path, **changes: object) -> Scorer:
    """A cropped, clean, CPU :class:`Scorer` with ``changes`` to its settings."""
    from pytest_lipsync import Settings
    from pytest_lipsync.scoring.scorer import Scorer

    settings = Settings(
        protocol="cropped", fidelity="clean", device="cpu", syncnet_weights=str(syncnet_weights), offline=True
    )
    return Scorer(settings.replace(**changes))


@pytest.mark.parametrize("protocol", ["cropped", "pipeline"])
def test_scores_that_are_not_finite_fail_the_video_never_pass_it(
    protocol: str, syncnet_weights: Path, tmp_path: Path
) -> None:
    """Finite weights can still overflow float32 (here a lip embedding bias of 1e38, whose squared distances are
    infinite): LSE-D comes out inf and LSE-C inf - inf = NaN. Such a video fails with ``non_finite``."""
    import torch

    state = torch.load(syncnet_weights, weights_only=True)
    state["netfclip.3.bias"] = torch.full_like(state["netfclip.3.bias"], 1e38)
    overflowing = tmp_path / "overflowing.model"
    torch.save(state, overflowing)
    path = write_clip(tmp_path / "clip.mkv", ClipSpec(seconds=1.0, width=96, height=96, marker=True))
    scorer = scorer_with(
        overflowing,
        protocol=protocol,
        detector="pytest_lipsync.synthetic.faces:marker_detector",
        min_track=10,
        min_face_size=10,
    )
    score = scorer.score(path)
    assert score.error is not None and (score.error.kind, score.metrics, score.tracks) == ("non_finite", {}, ())
    assert (
        f"{path}: SyncNet's distances are not finite (lse_d = inf, lse_c = nan in the track at frames 0-24)"
        in score.error.message
    )
    assert "precision = 'fp32'" in score.error.message
    assert score.error.facts == {"first_frame": 0, "last_frame": 24, "lse_d": "inf", "lse_c": "nan"}


# MJPEG rejects a damaged packet (InvalidDataError: the frame is lost); MPEG-4 Part 2 conceals the damage
# and flags the frame ``is_corrupt`` (the frame is kept).
DAMAGED = {
    "rejected_mjpeg": damaged("rejected.mkv", "mjpeg", (10, 15)),
    "concealed_mpeg4": damaged("concealed.avi", "mpeg4", (10, 15)),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_packets_cost_only_their_frames_and_are_counted(
    case: str, syncnet_weights: Path, tmp_path: Path
) -> None:
    result = scorer_with(syncnet_weights, max_corrupt_fraction=0.5).score(DAMAGED[case](tmp_path))
    assert result.error is None, result.error
    assert result.frames == 25 and result.tracks[0].windows == 20  # lost frames' slots are filled by their neighbours
    assert result.damaged_frames == 2
    document = result.to_dict()
    assert document["damaged_frames"] == result.damaged_frames and VideoScore.from_dict(document).to_dict() == document


def test_more_damage_than_max_corrupt_fraction_fails_with_the_counts(syncnet_weights: Path, tmp_path: Path) -> None:
    path = damaged("rejected.mkv", "mjpeg", (10, 15))(tmp_path)
    error = scorer_with(syncnet_weights).score(path).error  # the default limit: 1 %
    assert error is not None and error.kind == "decode_error"
    assert error.facts == {"damaged_frames": 2, "frames": 25, "max_corrupt_fraction": 0.01}
    message = (
        "2 of its 25 video frames are damaged (lost or concealed by the decoder, 8.0%), "
        "over the limit max_corrupt_fraction = 0.01"
    )
    assert message in error.message and "raise the 'max_corrupt_fraction' setting" in error.message
    assert scorer_with(syncnet_weights, max_corrupt_fraction=0.08).score(path).ok  # the limit is inclusive


def test_damage_is_counted_once_per_video_over_both_pipeline_passes(syncnet_weights: Path, tmp_path: Path) -> None:
    path = damaged("face.mkv", "mjpeg", (12,), seconds=1.2, width=96, height=96, marker=True)(tmp_path)
    pipeline = {
        "protocol": "pipeline",
        "detector": "pytest_lipsync.synthetic.faces:marker_detector",
        "min_track": 10,
        "min_face_size": 10.0,
    }
    result = scorer_with(syncnet_weights, max_corrupt_fraction=0.1, **pipeline).score(path)
    assert result.error is None, result.error
    assert result.damaged_frames == 1 and result.frames == 30


def test_every_decoding_pass_finds_the_same_damage(tmp_path: Path) -> None:
    source = open_video(damaged("rejected.mkv", "mjpeg", (3, 4, 5))(tmp_path), VideoLimits(max_corrupt_fraction=0.5))
    for _ in range(2):
        assert len(list(source.decoded())) == 25 and source.damaged_frames == 3


def test_results_written_before_damage_was_counted_still_load() -> None:
    document = VideoScore("a.mp4", {"lse_d": 7.0}).to_dict()
    del document["damaged_frames"]
    assert VideoScore.from_dict(document) == VideoScore("a.mp4", {"lse_d": 7.0}, damaged_frames=0)


# ---------------------------------------------------------------- timestamps that go backwards


def backwards_timestamps(folder: Path) -> Path:
    """20 MJPEG frames (frame ``i`` is grey level ``10 * i``) whose PTS run 0..9, then back to 5..14 (in 25 fps
    ticks), as a careless concatenation leaves them. Muxers demand increasing DTS, so PTS are set apart."""
    from fractions import Fraction

    path = folder / "backwards.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for index, tick in enumerate([*range(10), *range(5, 15)]):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * index, np.uint8), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in stream.encode(frame):
                packet.pts, packet.dts = tick + 10, index  # PTS may not fall below DTS
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_timestamps_that_go_backwards_give_a_monotonic_stream_as_ffmpeg_does(tmp_path: Path) -> None:
    """Decision: no error. The 25 fps stream is what ffmpeg's fps filter (the reference's ``-r 25``) makes of
    it: a frame stamped behind a slot already emitted is dropped (frames 10-13, stamped 5-8), one stamped on
    the slot still open replaces the frame there (frame 14, stamped 9, replaces frame 9), then the stream
    goes on. The video is scored in stream time: 15 frames for the 15 ticks it spans."""
    source = open_video(backwards_timestamps(tmp_path))
    shown = [round(frame.to_ndarray().mean() / 10) for frame in source.decoded()]
    assert shown == [*range(9), *range(14, 20)]
    assert source.damaged_frames == 0


# ---------------------------------------------------------------- time limit per video


def test_a_video_past_its_timeout_fails_with_timeout_and_stops_decoding(syncnet_weights: Path, tmp_path: Path) -> None:
    import threading

    path = write_clip(tmp_path / "slow.mkv", TINY)
    error = scorer_with(syncnet_weights, timeout=1e-3).score(path).error
    assert error is not None and error.kind == "timeout"
    assert error.facts["limit"] == 1e-3 and error.facts["elapsed"] > 1e-3
    assert "over the time limit of 0.001 s" in error.message and "Raise the 'timeout' setting" in error.message
    assert not any(thread.name == "lipsync-prefetch" for thread in threading.enumerate())


def test_the_deadline_is_checked_between_any_two_syncnet_forward_passes(
    syncnet_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crops pushed in a batch larger than ``batch_size`` are embedded in several forward passes: past the
    deadline the next one never starts, so the limit is overshot by one forward pass at most."""
    import torch

    from pytest_lipsync.errors import ScoringTimeoutError
    from pytest_lipsync.limits import Deadline
    from pytest_lipsync.models.registry import SYNCNET
    from pytest_lipsync.models.resolve import locate_weights
    from pytest_lipsync.sync.lse import SyncScorer, Timings
    from pytest_lipsync.sync.model import load_syncnet

    forwards: list[int] = []
    monkeypatch.setattr(SyncScorer, "embed_windows", lambda self, pending, first, count, *rest: forwards.append(count))
    net = load_syncnet(locate_weights(SYNCNET, syncnet_weights), torch.device("cpu"))  # type: ignore[arg-type]  # the stand-in file exists: it resolves
    expired = Deadline(Path("clip.mp4"), limit=1.0, started=time.monotonic() - 10)
    embedder = SyncScorer(net, torch.device("cpu"), batch_size=4).embedder(
        np.zeros(640 * 40, np.int16), Timings(deadline=expired)
    )
    with pytest.raises(ScoringTimeoutError, match="clip.mp4: scoring was stopped"):
        embedder.add(np.zeros((25, 224, 224, 3), np.uint8))
    assert forwards == [4]


def test_every_open_of_one_scored_video_shares_one_clock(
    make_clip: MakeClip, scorers: Scorers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``timeout`` is per video: LSE and the ground-truth comparison (both files) run against the clock started
    when scoring began, so ``--workers`` killing at twice the limit never kills a healthy video."""
    from pytest_lipsync.errors import ScoringTimeoutError
    from pytest_lipsync.media import decode

    clip = make_clip("one_clock.mp4", ClipSpec(seconds=1.0))
    clocks: list[float | None] = []
    real = decode.open_video

    def recording(path: str | Path, limits: VideoLimits = VideoLimits()) -> VideoSource:
        clocks.append(limits.started)
        return real(path, limits)

    monkeypatch.setattr(decode, "open_video", recording)
    before = time.monotonic()
    score = scorers().score(clip, reference=clip)
    assert score.ok, score.error
    assert len(clocks) == 3 and len(set(clocks)) == 1  # the video for LSE, then both files for PSNR/SSIM
    assert clocks[0] is not None and before <= clocks[0] <= time.monotonic()
    late = open_video(clip, VideoLimits(timeout=5.0, started=time.monotonic() - 10))
    with pytest.raises(ScoringTimeoutError):
        late.deadline.check()


def test_the_timeout_holds_while_one_frame_becomes_millions(tmp_path: Path) -> None:
    """A header whose frame rate is one frame a day (a flipped bit did it in the fuzzer) makes three frames
    6.5 million at 25 fps, with no packet in between: the limit is checked per output frame too."""
    from fractions import Fraction

    from pytest_lipsync.errors import ScoringTimeoutError

    path = tmp_path / "daily.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=Fraction(1, 86400))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 9 * index, np.uint8), format="bgr24")
            frame.pts = index
            for packet in [*stream.encode(frame), *(stream.encode(None) if index == 2 else [])]:
                out.mux(packet)
    source = open_video(path, VideoLimits(timeout=0.2))
    assert source.info.duration == 3 * 86400
    with pytest.raises(ScoringTimeoutError, match="over the time limit of 0.2 s"):
        for _ in source.decoded():
            pass


def test_the_default_timeout_grows_with_the_header_duration(tmp_path: Path) -> None:
    source = open_video(write_clip(tmp_path / "clip.mkv", TINY))
    assert source.info.duration is not None
    assert source.deadline.limit == pytest.approx(60 + 100 * source.info.duration)  # small frames: one area unit
    assert open_video(source.path, VideoLimits(timeout=2.5)).deadline.limit == 2.5


def test_the_default_timeout_grows_with_the_frame_area_past_720p() -> None:
    from pytest_lipsync.limits import video_timeout

    assert video_timeout(None, 10.0, 1920 * 1080) == pytest.approx(60 + 100 * 2.25 * 10)
    assert video_timeout(None, 10.0, 640 * 360) == video_timeout(None, 10.0, 1280 * 720) == 60 + 100 * 10
    assert video_timeout(None, None, 1920 * 1080) == 60  # no duration in the header: the base alone
    assert video_timeout(30.0, 10.0, 1920 * 1080) == 30.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", "5"),
        ("max_corrupt_fraction", -0.1),
        ("max_corrupt_fraction", 1.5),
        ("max_corrupt_fraction", None),
    ],
)
def test_timeout_and_max_corrupt_fraction_are_validated(key: str, value: object) -> None:
    from pytest_lipsync import Settings
    from pytest_lipsync.errors import ConfigError

    with pytest.raises(ConfigError, match=f"setting '{key}' is"):
        Settings(**{key: value})  # type: ignore[arg-type]  # deliberately the wrong type: the check under test


def test_timeout_and_max_corrupt_fraction_are_keys_of_every_source(tmp_path: Path) -> None:
    from pytest_lipsync.config.resolution import Layer, env_layer, resolve
    from pytest_lipsync.errors import ConfigError

    layers = [
        Layer("pyproject", {"max_corrupt_fraction": 0.05}, "pyproject.toml"),
        env_layer({"LIPSYNC_TIMEOUT": "90"}),
    ]
    settings = resolve(layers, tmp_path).settings
    assert (settings.timeout, settings.max_corrupt_fraction) == (90.0, 0.05)
    with pytest.raises(ConfigError, match="--lipsync-timeout is invalid: setting 'timeout' is 0.0"):
        resolve([Layer("flag", {"timeout": "0"})], tmp_path)


class _Hanging:
    """A stand-in scorer stuck forever on any video named ``hang*``, as a native decoder hang would leave it."""

    run = RunRecord("0", {}, (), "cpu")

    def score(self, path: str | Path, reference: object = None, progress: object = None) -> VideoScore:
        if Path(path).name.startswith("hang"):
            while True:
                time.sleep(60)
        return VideoScore(str(path), {"lse_d": 1.0})


def hanging_scorer(settings: object) -> _Hanging:
    return _Hanging()


def test_a_worker_stuck_past_twice_the_timeout_is_killed_and_the_others_go_on(tmp_path: Path) -> None:
    from pytest_lipsync.scale.workers import Job, Progress, score_jobs
    from pytest_lipsync.scoring.entry import VideoEntry
    from pytest_lipsync.settings import Settings

    jobs = [
        Job(n, VideoEntry(name, tmp_path / name)) for n, name in enumerate(["a.mp4", "hang.mp4", "b.mp4", "c.mp4"], 1)
    ]
    _, results = score_jobs(
        jobs, Settings(device="cpu", timeout=0.5), 2, Progress(len(jobs), quiet=True), hanging_scorer
    )
    assert [result.error.kind if result.error else "ok" for result in results] == ["ok", "timeout", "ok", "ok"]
    message = results[1].error.message  # type: ignore[union-attr]  # the timeout, asserted above
    assert message.startswith(f"{tmp_path / 'hang.mp4'}: scoring was stopped after ")
    assert "over the time limit of 0.5 s; the worker process scoring it did not respond and was killed" in message


# ---------------------------------------------------------------- damaged configuration and baseline files

BAD_TOML = '[tool.lipsync]\nvideos = "videos"\nprotocol = = "cropped"\n'


def test_malformed_pyproject_names_the_file_and_the_line_in_pytest(pytester: pytest.Pytester) -> None:
    """pytest parses pyproject.toml itself before the plugin does, and says where it fails."""
    pytester.makepyprojecttoml(BAD_TOML)
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: */pyproject.toml: Invalid value (at line 3, column 12)"])


def test_malformed_pyproject_names_the_file_and_the_line_in_the_cli(
    make_clip: MakeClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_lipsync.cli.app import main

    (tmp_path / "pyproject.toml").write_text(BAD_TOML)
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(make_clip("toml_clip.mkv", TINY)), "-q"]) == 2
    expected = (
        f"lipsync: error: {tmp_path / 'pyproject.toml'}: is not valid TOML: Invalid value (at line 3, column 12). Fix"
    )
    assert capsys.readouterr().err.startswith(expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{"schema_version": 1, "tool": {"name": "pytest-lipsync", "vers',
            "Unterminated string starting at: line 1 column 58",
        ),
        (
            '{"schema_version": 1, "tool": {"version": "1"}, "settings": {}, "weights": [], "device": "cpu", '
            '"videos": [{"path": "a.mp4", "metrics": {"lse_d": "low"}}]}',
            "videos[0].metrics.lse_d must be a finite number or null, not 'low'",
        ),
        ("[1, 2]", "a report is a JSON object, not a list"),
    ],
    ids=["truncated", "hand_edited_metric", "not_a_report"],
)
def test_a_damaged_baseline_is_refused_saying_what_is_wrong(text: str, problem: str, tmp_path: Path) -> None:
    from pytest_lipsync.errors import ConfigError
    from pytest_lipsync.gate.baseline import load_baseline

    path = tmp_path / "lipsync-baseline.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_baseline(path)
    assert raised.value.message.startswith(f"{path}: is not a readable baseline ({problem}")
    assert (
        "Restore it from version control, or delete it and run with --lipsync-update-baseline" in raised.value.message
    )


# ---------------------------------------------------------------- one bad video never stops the others


@pytest.mark.slow
def test_lipsync_score_workers_score_every_good_file_beside_bad_ones(
    syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under ``--workers 2``, each bad file fails with its own kind and every good one scores (in one process,
    ``test_workers`` shows the same results, and the corpus above each kind)."""
    import json

    from pytest_lipsync.cli.app import main

    folder = tmp_path / "out"
    folder.mkdir()
    kinds = {
        "good1.mkv": "ok",
        "good2.avi": "ok",
        zero_bytes(folder).name: "unreadable",
        clip("sound.mkv", video=False)(folder).name: "no_video_stream",
        clip("hush.mkv", silent=True)(folder).name: "silent_audio",
        clip("short.mkv", seconds=0.16)(folder).name: "too_short",
        damaged("damaged.mkv", "mjpeg", (10, 15))(folder).name: "decode_error",
    }
    clip("good1.mkv")(folder), clip("good2.avi", seed=5)(folder)
    out = tmp_path / "scores.json"
    args = ["score", str(folder), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline"]
    code = main([*args, "--syncnet-weights", str(syncnet_weights), "--workers", "2", "--json", str(out), "-q"])
    assert code == 1
    videos = json.loads(out.read_text())["videos"]
    assert {Path(video["path"]).name: (video["error"] or {"kind": "ok"})["kind"] for video in videos} == kinds
    assert all(video["metrics"]["lse_d"] > 0 for video in videos if video["error"] is None)
    assert "decode_error" in capsys.readouterr().out
