"""The reference's frame rule (``ffmpeg -r 25`` into AVI, then JPEG extraction) against FFmpeg's own output.

``tests/data/ffmpeg_r25_frames.json`` holds facts measured outside the project: for clips written by
:class:`fixtures.indexed.IndexedClip`, the source index of every JPEG the reference's two commands wrote, and
the clip's timing as FFmpeg 5.1 read it. :func:`cli_frames` is FFmpeg 5.1's ``do_video_out`` transcribed
statement by statement, slow and literal; the production code must agree with both.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pytest_lipsync.media.decode import open_video
from pytest_lipsync.media.framerule import AviTimeline, StreamClock, extracted
from tests.indexed import IndexedClip, read_index

FIXTURE = json.loads((Path(__file__).parent / "data" / "ffmpeg_r25_frames.json").read_text())
CASES = {case["name"]: case for case in FIXTURE["cases"]}
FOLLOWED = FIXTURE["followed"]


def _rescale_q(value: int, source: Fraction, target: Fraction) -> int:
    """av_rescale_q with AV_ROUND_NEAR_INF."""
    exact = Fraction(value) * source / target
    magnitude = int(abs(exact) + Fraction(1, 2))
    return magnitude if exact >= 0 else -magnitude


def _lrintf(value: float) -> int:
    return round(float(np.float32(value)))


def cli_frames(
    pts: list[int], durations: list[int], time_base: Fraction, start_us: int, frame_rate: Fraction | None
) -> list[int]:
    """Source index of each JPEG: ``ffmpeg -r 25 video.avi`` (vsync VFR, the default for AVI), then image2
    extraction of the AVI (vsync CFR), as FFmpeg 5.1's fftools/ffmpeg.c computes them. Frames in presentation
    order; ``durations`` are pkt_duration (0: none); ``frame_rate`` is the input's guessed rate."""
    enc_tb = 1 / 25  # av_q2d(enc->time_base)
    # do_video_out, first command: duration from the buffersink frame rate, capped by the output rate, then
    # replaced by the packet's duration in output ticks where lrintf of it is > 0.
    base_duration = 1 / (float(frame_rate) * enc_tb) if frame_rate else 0.0
    base_duration = min(base_duration, 1 / (25 * enc_tb))
    ts_offset = _rescale_q(start_us, Fraction(1, 1_000_000), time_base)
    sync_opts = 0
    avi: list[tuple[int, int]] = []  # (source index, AVI pts)
    for index, (frame_pts, pkt_duration) in enumerate(zip(pts, durations)):
        # adjust_frame_pts_to_encoder_tb: extra_bits = av_clip(29 - av_log2(25), 0, 16) = 16
        float_pts = _rescale_q(frame_pts - ts_offset, time_base, Fraction(1, 25 << 16)) / (1 << 16)
        float_pts += (1 if float_pts > 0 else -1) * 1.0 / (1 << 17)
        duration = base_duration
        if _lrintf(pkt_duration * float(time_base) / enc_tb) > 0:
            duration = _lrintf(pkt_duration * float(time_base) / enc_tb)
        sync_ipts = float_pts
        delta0 = sync_ipts - sync_opts
        delta = delta0 + duration
        if delta0 < 0 and delta > 0:
            sync_ipts = sync_opts
            delta0 = 0
        nb_frames = 1
        if delta <= -0.6:
            nb_frames = 0
        elif delta > 0.6:
            sync_opts = round(sync_ipts)  # llrint
        for _ in range(nb_frames):
            avi.append((index, sync_opts))
            sync_opts += 1
    # Second command: the AVI's frames at their pts (time base 1/25, duration 1), vsync CFR.
    out: list[int] = []
    sync_opts = 0
    last_nb0_frames = [0, 0, 0]
    last_frame: int | None = None
    for index, avi_pts in avi:
        float_pts = avi_pts + (1 if avi_pts > 0 else -1) * 1.0 / (1 << 17)
        delta0 = float_pts - sync_opts
        delta = delta0 + 1
        if delta0 < 0 and delta > 0:
            delta0 = 0
        nb0_frames, nb_frames = 0, 1
        if delta < -1.1:
            nb_frames = 0
        elif delta > 1.1:
            nb_frames = _lrintf(delta)
            if delta0 > 1.1:
                nb0_frames = _lrintf(delta0 - 0.6)
        nb0_frames = min(nb0_frames, nb_frames)
        last_nb0_frames = [nb0_frames, *last_nb0_frames[:2]]
        for i in range(nb_frames):
            out.append(last_frame if i < nb0_frames and last_frame is not None else index)
            sync_opts += 1
        last_frame = index
    nb_frames = sorted(last_nb0_frames)[1]  # flushing: mid_pred of the last three
    out += [last_frame] * nb_frames if last_frame is not None else []
    return out


def _clip(case: dict) -> IndexedClip:
    clip = case["clip"]
    return IndexedClip(
        Path(case["name"]).suffix,
        Fraction(clip["rate"]),
        Fraction(clip["time_base"]),
        tuple(clip["pts"]),
        clip["b_frames"],
    )


@pytest.mark.parametrize("name", CASES)
def test_the_literal_rule_gives_what_ffmpeg_wrote(name: str) -> None:
    read = CASES[name]["read_by_ffmpeg_5_1"]
    frames = cli_frames(
        read["pts"], read["durations"], Fraction(read["time_base"]), read["start_time_us"], Fraction(read["frame_rate"])
    )
    assert frames == CASES[name]["frames"][FOLLOWED]


@pytest.mark.parametrize("name", CASES)
def test_decoding_with_the_reference_rule_gives_what_ffmpeg_wrote(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = _clip(case).write(tmp_path / name)
    with av.open(str(path)) as container:  # the same timestamps as the clip ffmpeg read
        pts = sorted(packet.pts for packet in container.demux(video=0) if packet.pts is not None)
    assert pts == case["read_by_ffmpeg_5_1"]["pts"]
    shown = [read_index(frame.to_ndarray()) for frame in open_video(path).decoded("rgb24", rule="ffmpeg_r25")]
    assert shown == case["frames"][FOLLOWED]


def _random_timing(seed: int) -> tuple[list[int], list[int], Fraction, int, Fraction]:
    """Frame times with bursts, gaps of several slots and exact half-slot durations, in a random time base."""
    rng = np.random.default_rng(seed)
    time_base = Fraction(1, int(rng.choice([1000, 12800, 15360, 90000])))
    ticks_per_ms = Fraction(1, 1000) / time_base
    steps_ms = rng.choice([4, 8, 17, 20, 33, 40, 42, 50, 60, 67, 100, 140, 180], size=int(rng.integers(5, 60)))
    pts = [round(ms * ticks_per_ms) for ms in np.concatenate([[0], np.cumsum(steps_ms)])]
    pts = [p + int(rng.integers(0, 3)) for p in pts]
    pts = sorted(set(pts))
    durations = [int(b - a) if rng.random() < 0.8 else 0 for a, b in zip(pts, pts[1:] + [pts[-1] + pts[1] - pts[0]])]
    start_us = int(rng.choice([0, 0, -20_000, 33_000]))
    rate = Fraction(int(rng.choice([24, 30, 50, 60])))
    return pts, durations, time_base, start_us, rate


@pytest.mark.parametrize("seed", range(40))
def test_the_rule_agrees_with_the_literal_one_on_irregular_timing(seed: int) -> None:
    pts, durations, time_base, start_us, rate = _random_timing(seed)
    start = _rescale_q(start_us, Fraction(1, 1_000_000), time_base)
    clock = StreamClock(time_base, start, rate)
    timeline = AviTimeline(clock)
    placed = [(index, slot) for index, p in enumerate(pts) if (slot := timeline.place(p, durations[index])) is not None]
    assert list(extracted(placed)) == cli_frames(pts, durations, time_base, start_us, rate)


def test_a_25fps_input_is_the_same_under_both_rules(tmp_path: Path) -> None:
    clip = IndexedClip(".mkv", Fraction(25), Fraction(1, 1000), tuple(range(0, 1600, 40)), audio_rate=16000)
    source = open_video(clip.write(tmp_path / "25fps.mkv"))
    nearest = [frame.to_ndarray() for frame in source.decoded("bgr24")]
    reference = [frame.to_ndarray() for frame in source.decoded("bgr24", rule="ffmpeg_r25")]
    assert len(reference) == len(nearest) == 40
    assert all(np.array_equal(a, b) for a, b in zip(nearest, reference))
