"""PROTOCOL section 6 against a literal, slow re-implementation written as the spec words it.

The literal version builds each window's (1, 3, 5, 224, 224) input, computes MFCC over the whole track,
loops over windows and offsets, and takes the median by sorting. The production path streams, runs the
lip tower over whole sequences and chunks the MFCC; both must give the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import python_speech_features
import torch

from pytest_lipsync.media.decode import open_video
from pytest_lipsync.media.reencode import JPEG_PIX_FMT, jpeg_round_trip
from pytest_lipsync.settings import Fidelity
from pytest_lipsync.sync.distances import offset_distances
from pytest_lipsync.sync.lse import SyncScorer, Timings
from pytest_lipsync.sync.model import SyncNet
from pytest_lipsync.synthetic.clips import ClipSpec, speech
from tests.conftest import MakeClip, Scorers

CLIPS = {
    "h264_aac.mp4": ClipSpec(seconds=1.6, seed=1),
    "mpeg4_pcm_30fps.avi": ClipSpec(seconds=1.7, fps=30, width=112, height=112, seed=2),
    "h264_pcm_wide.mkv": ClipSpec(seconds=1.5, width=128, height=80, seed=3, audio_delay_frames=2),
}


def literal_lse(net: SyncNet, frames: list[np.ndarray], audio: np.ndarray) -> dict[str, Any]:
    """PROTOCOL 6, step by step, with per-window loops."""
    mfcc = python_speech_features.mfcc(audio, 16000)  # (columns, 13)
    cc = torch.from_numpy(mfcc.T[None, None].astype(float)).float()  # (1, 1, 13, columns)
    im = np.stack(frames, axis=3)[None].transpose(0, 3, 4, 1, 2)  # (1, 3, T, 224, 224), BGR
    imtv = torch.from_numpy(im.astype(float)).float()
    min_length = min(len(frames), math.floor(len(audio) / 640))
    lastframe = min_length - 5
    lip, aud = [], []
    with torch.no_grad():
        for i in range(lastframe):
            lip.append(net.forward_lip(imtv[:, :, i : i + 5]).double()[0])
            aud.append(net.forward_aud(cc[:, :, :, 4 * i : 4 * i + 20]).double()[0])
    vshift = 15
    zero = torch.zeros_like(aud[0])
    padded = [zero] * vshift + aud + [zero] * vshift
    dists = [
        [float(torch.sqrt(((lip[i] - padded[i + k] + 1e-6) ** 2).sum())) for k in range(31)] for i in range(len(lip))
    ]
    mean_dist = [sum(dists[i][k] for i in range(len(lip))) / len(lip) for k in range(31)]
    minval = min(mean_dist)
    minidx = mean_dist.index(minval)
    median = sorted(mean_dist)[15]
    fconf = [median - dists[i][minidx] for i in range(len(lip))]
    padded_conf = [0.0] * 4 + fconf + [0.0] * 4
    smoothed = [sorted(padded_conf[i : i + 9])[4] for i in range(len(fconf))]
    return {
        "lse_d": minval,
        "lse_c": median - minval,
        "offset": vshift - minidx,
        "mean_dist": mean_dist,
        "frame_confidence": smoothed,
        "windows": len(lip),
    }


def literal_inputs(path: Path, fidelity: str) -> tuple[list[np.ndarray], np.ndarray]:
    source = open_video(path)
    if fidelity == "reference":
        frames = list(jpeg_round_trip(source.decoded(JPEG_PIX_FMT)))
    else:
        frames = [frame.to_ndarray() for frame in source.decoded("bgr24")]
    return [cv2.resize(frame, (224, 224)) for frame in frames], source.audio()


@pytest.mark.slow
@pytest.mark.parametrize("fidelity", ["clean", "reference"])
@pytest.mark.parametrize("name", sorted(CLIPS))
def test_production_path_equals_literal_protocol(
    name: str, fidelity: Fidelity, make_clip: MakeClip, scorers: Scorers
) -> None:
    path = make_clip(name, CLIPS[name])
    scorer = scorers(fidelity)
    result = scorer.score(path)
    assert result.ok, result.error
    frames, audio = literal_inputs(path, fidelity)
    expected = literal_lse(scorer._sync.net, frames, audio)

    (track,) = result.tracks
    assert track.windows == expected["windows"] == min(len(frames), len(audio) // 640) - 5
    assert track.offset == expected["offset"] == int(result.metrics["offset"])
    assert track.lse_d == pytest.approx(expected["lse_d"], rel=1e-5)
    assert track.lse_c == pytest.approx(expected["lse_c"], rel=1e-5, abs=1e-6)
    assert result.metrics["lse_d"] == track.lse_d
    np.testing.assert_allclose(track.mean_dist, expected["mean_dist"], rtol=1e-5)
    # Confidences are differences of float32 distances near 10: absolute float32 rounding, not relative.
    np.testing.assert_allclose(track.frame_confidence, expected["frame_confidence"], rtol=1e-5, atol=2e-4)
    if CLIPS[name].fps == 25:  # the stand-in weights find the synthetic clips' true delay
        assert track.offset == -CLIPS[name].audio_delay_frames
    assert result.frames == len(frames)


@pytest.fixture(scope="module")
def track_inputs(make_clip: MakeClip) -> tuple[list[np.ndarray], np.ndarray]:
    """40 frames of picture and 2.4 s of matching sound: the audio outlasts the video."""
    frames, _ = literal_inputs(make_clip("shift.mkv", ClipSpec(seconds=1.6, seed=7)), "clean")
    return frames, speech(2.4, 16000, 1, seed=7)[0]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_delaying_audio_by_k_frames_shifts_the_curve_by_k(
    k: int, track_inputs: tuple[list[np.ndarray], np.ndarray], scorers: Scorers
) -> None:
    frames, audio = track_inputs
    delayed = np.concatenate([np.zeros(640 * k, np.int16), audio])
    sync: SyncScorer = scorers("clean")._sync
    lip, aud = sync.embed_track([np.stack(frames)], audio, Timings())
    lip_k, aud_k = sync.embed_track([np.stack(frames)], delayed, Timings())
    count = len(lip)
    assert len(lip_k) == count and torch.equal(lip, lip_k)

    d, d_k = offset_distances(lip, aud).numpy(), offset_distances(lip_k, aud_k).numpy()
    # d_k[i, m] compares lip i with delayed audio window j = i + m - 15, i.e. original window j - k:
    # equal wherever neither side reads the delayed track's first k windows or its padding.
    checked = 0
    for i in range(count):
        for m in range(k, 31):
            j = i + m - 15
            if j < 0 or k <= j < count or j >= count + k:
                assert d_k[i, m] == pytest.approx(d[i, m - k], rel=1e-4), (i, m)
                checked += 1
    assert checked > count * 20

    curve, curve_k = d.mean(axis=0), d_k.mean(axis=0)
    assert int(np.argmin(curve_k)) == int(np.argmin(curve)) + k
