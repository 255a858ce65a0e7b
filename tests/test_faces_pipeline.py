"""The pipeline protocol end to end: generated clips with marker faces, the marker detector plug-in, stand-in weights.

Stage-level geometry (tracking, interpolation, crop pixels, scene cuts, S3FD arithmetic) is checked in the
stage tests; here the composition is: one clip scored by the production pipeline must give the numbers of a
literal PROTOCOL 5 crop + PROTOCOL 6 run on the same frames, tracks split at faces and cuts, the video metric
is the mean over tracks, a short clip fails with the facts, and both fidelities run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pytest_lipsync import Settings
from pytest_lipsync.faces.tracking import Tracking
from pytest_lipsync.media.decode import VideoSource, open_video
from pytest_lipsync.results import VideoScore
from pytest_lipsync.scoring.pipeline import Detections
from pytest_lipsync.scoring.scorer import Scorer
from pytest_lipsync.synthetic.clips import ClipSpec
from pytest_lipsync.synthetic.faces import marker_boxes
from tests.conftest import MakeClip, PipelineScorers, Scorers
from tests.indexed import IndexedClip, read_index
from tests.test_faces_tracking import LIMITS, literal_crop, literal_pipeline, literal_smoothing
from tests.test_sync_protocol import literal_lse

if TYPE_CHECKING:
    import av

MARKER = "pytest_lipsync.synthetic.faces:marker_detector"
SHORT = ClipSpec(seconds=3.0, width=160, height=160, marker=True, seed=22)  # 75 frames: scored with min_track = 50
TINY = ClipSpec(seconds=1.0, width=160, height=160, marker=True, seed=24)
SHORT_LIMITS = {**LIMITS, "min_track": 50}
TWO_FACES_CUT = ClipSpec(seconds=3.0, width=320, height=160, faces=2, marker=True, cut_frame=40, seed=23)


@pytest.fixture(scope="session")
def pipeline_scorer(syncnet_weights: Path) -> PipelineScorers:
    """One pipeline Scorer per settings, shared by the session."""
    made: dict[tuple[tuple[str, object], ...], Scorer] = {}

    def get(**changes: object) -> Scorer:
        key = tuple(sorted(changes.items()))
        if key not in made:
            base = Settings(fidelity="clean", device="cpu", syncnet_weights=str(syncnet_weights), offline=True)
            made[key] = Scorer(base.replace(**{"detector": MARKER, **changes}))
        return made[key]

    return get


@pytest.fixture(scope="module")
def short_clip(make_clip: MakeClip) -> Path:
    return make_clip("pipeline_short.mp4", SHORT)


@pytest.fixture(scope="module")
def clean_score(short_clip: Path, pipeline_scorer: PipelineScorers) -> VideoScore:
    return pipeline_scorer(min_track=50).score(short_clip)


def literal_track(frames: list[np.ndarray]) -> tuple[list[int], list[float], list[float], list[float]]:
    """The one track of PROTOCOL 5 written out: marker boxes per frame, the literal tracker and smoothing.

    Frame numbers, then the smoothed half size and centre per frame; ``frames`` in RGB or BGR.
    """
    detections = [marker_boxes(frame[..., ::-1]) for frame in frames]
    (track,) = literal_pipeline(detections, [(0, len(frames))], **SHORT_LIMITS)
    return (track["frame"], *literal_smoothing(track["bbox"]))


def literal_track_inputs(path: Path) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int]]:
    """PROTOCOL 5 written out: :func:`literal_track`, then the padded crop; and the track's audio."""
    source = open_video(path)
    frames = [frame.to_ndarray() for frame in source.decoded("bgr24")]
    numbers, s, x, y = literal_track(frames)
    crops = [literal_crop(frames[f], s[n], x[n], y[n]) for n, f in enumerate(numbers)]
    first, last = numbers[0], numbers[-1]
    return crops, source.audio()[first * 640 : (last + 1) * 640], (first, last)


def test_one_face_scores_as_the_literal_crop_and_protocol_6(
    short_clip: Path, clean_score: VideoScore, pipeline_scorer: PipelineScorers
) -> None:
    assert clean_score.ok, clean_score.error
    crops, audio, (first, last) = literal_track_inputs(short_clip)
    expected = literal_lse(pipeline_scorer(min_track=50)._sync.net, crops, audio)

    (track,) = clean_score.tracks
    assert (track.start_frame, track.end_frame) == (first, last) == (0, 74)
    assert track.windows == expected["windows"] == 70
    assert track.offset == expected["offset"]
    assert track.lse_d == pytest.approx(expected["lse_d"], rel=1e-5)
    assert track.lse_c == pytest.approx(expected["lse_c"], rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(track.mean_dist, expected["mean_dist"], rtol=1e-5)
    assert clean_score.metrics == {"lse_d": track.lse_d, "lse_c": track.lse_c, "offset": float(track.offset)}
    assert clean_score.frames == 75
    assert track.boxes is not None and track.boxes.detections == 75
    assert track.boxes.mean_width > 100 and track.boxes.mean_height > track.boxes.mean_width


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "channels", "repeats"), [(44100, 2, 1), (16000, 1, 2)])
def test_reference_fidelity_replays_the_lossy_steps(
    rate: int,
    channels: int,
    repeats: int,
    make_clip: MakeClip,
    pipeline_scorer: PipelineScorers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clip = make_clip(f"pipeline_short_{rate}.mp4", replace(SHORT, audio_rate=rate, audio_channels=channels))
    clean_score = pipeline_scorer(min_track=50).score(clip)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the XVID step writes its one file per track
    result = pipeline_scorer(min_track=50, fidelity="reference").score(clip)
    assert result.ok, result.error
    assert list(tmp_path.iterdir()) == []
    (track,), (clean,) = result.tracks, clean_score.tracks
    # The reference's AVI repeats the first frame where the MP3's priming delayed the streams.
    assert result.frames == clean_score.frames + repeats
    assert (track.start_frame, track.end_frame - repeats) == (clean.start_frame, clean.end_frame)
    assert track.lse_d != clean.lse_d
    assert result.timings["fidelity"] > 0
    if rate == 44100:  # 128 kb/s MP3: a small move; LAME's 24 kb/s default for 16 kHz mono blurs these clips' sound
        assert track.lse_d == pytest.approx(clean.lse_d, rel=0.1)
        assert abs(track.lse_c - clean.lse_c) < 0.5


def test_reference_fidelity_reads_the_frames_ffmpeg_r25_picks_after_the_priming_repeats(tmp_path: Path) -> None:
    """A 30 fps clip with 16 kHz sound: scene cuts, detection and cropping all read the source frames the
    reference's ``ffmpeg -r 25`` picks (tests/test_media_framerule.py), the first one repeated for the priming."""
    from pytest_lipsync.scoring.pipeline import crop_batches, detection_batches, replay_shift

    clip = IndexedClip(
        ".mkv", Fraction(30), Fraction(1, 1000), tuple(round(j * 1000 / 30) for j in range(45)), audio_rate=16000
    )
    source = open_video(clip.write(tmp_path / "indexed_30fps.mkv"))
    picked = [read_index(frame.to_ndarray()) for frame in source.decoded("bgr24", rule="ffmpeg_r25")]
    nearest = [read_index(frame.to_ndarray()) for frame in source.decoded("bgr24")]
    assert picked != nearest  # the rules differ on this clip
    expected = [picked[0]] * replay_shift(source, reference=True) + picked
    scene_frames, detected = zip(*detection_batches(source, reference=True))
    assert [read_index(frame) for batch in scene_frames for frame in batch] == expected
    assert [read_index(frame) for batch in detected for frame in batch] == expected
    assert [read_index(frame) for batch in crop_batches(source, True, len(expected)) for frame in batch] == expected


def test_a_25fps_video_reads_the_very_frames_it_read_with_the_fps_filter(make_clip: MakeClip) -> None:
    """Under the reference's frame rule a 25 fps video's replay is pixel for pixel what it was with
    libavfilter's fps filter, so its scores are too."""
    from pytest_lipsync.media.reencode import JPEG_PIX_FMT, MPEG4_PIX_FMT, decode_jpeg, jpeg_files, mpeg4_round_trip
    from pytest_lipsync.scoring.pipeline import detection_batches, replay_shift

    source = open_video(make_clip("pipeline_short_44100.mp4", replace(SHORT, audio_rate=44100, audio_channels=2)))
    replayed = list(mpeg4_round_trip(source.decoded(MPEG4_PIX_FMT)))
    replayed = [replayed[0]] * replay_shift(source, reference=True) + replayed
    jpegs = [
        decode_jpeg(data) for data in jpeg_files((frame.reformat(format=JPEG_PIX_FMT) for frame in replayed), qscale=2)
    ]
    scene_frames, detected = (np.concatenate(frames) for frames in zip(*detection_batches(source, reference=True)))
    assert np.array_equal(scene_frames, np.stack([frame.to_ndarray(format="bgr24") for frame in replayed]))
    assert np.array_equal(detected, np.stack(jpegs))


@pytest.mark.slow
def test_reference_pass_2_decodes_the_jpegs_pass_1_kept_and_crops_what_a_replay_crops(
    make_clip: MakeClip,
    pipeline_scorer: PipelineScorers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pass 2 reads pass 1's JPEG files instead of replaying H.264 -> MPEG-4 -> JPEG; without room to keep
    them it replays. Four tracks across a cut, every score and every per-window value identical."""
    from pytest_lipsync.media import spill
    from pytest_lipsync.scoring import pipeline

    replays: list[Path] = []
    replay = pipeline._mpeg4_frames

    def counted(source: VideoSource) -> Iterator[av.VideoFrame]:
        replays.append(source.path)
        return replay(source)

    monkeypatch.setattr(pipeline, "_mpeg4_frames", counted)
    clip = make_clip("pipeline_two_faces_cut.mp4", TWO_FACES_CUT)
    scorer = pipeline_scorer(min_track=30, fidelity="reference")
    kept = scorer.score(clip)
    assert len(replays) == 1
    monkeypatch.setattr(spill, "free_space_budget", lambda: 20_000)  # a few of the frames: dropped in pass 1
    replayed = scorer.score(clip)
    assert len(replays) == 3
    assert kept.ok and replayed.ok, (kept.error, replayed.error)
    assert len(kept.tracks) == 4 and kept.tracks == replayed.tracks
    assert kept.metrics == replayed.metrics


def test_two_faces_and_a_scene_cut_give_four_tracks_and_the_mean(
    make_clip: MakeClip, pipeline_scorer: PipelineScorers
) -> None:
    result = pipeline_scorer(min_track=30).score(make_clip("pipeline_two_faces_cut.mp4", TWO_FACES_CUT))
    assert result.ok, result.error
    assert [(t.start_frame, t.end_frame) for t in result.tracks] == [(0, 39), (0, 39), (40, 74), (40, 74)]
    left, right = result.tracks[:2]
    assert left.boxes.mean_width == right.boxes.mean_width  # type: ignore[union-attr]  # pipeline tracks have boxes; None fails here
    assert left.lse_d != right.lse_d  # different pixels around each face
    assert result.metrics["lse_d"] == pytest.approx(np.mean([t.lse_d for t in result.tracks]), rel=1e-12)
    assert result.metrics["lse_c"] == pytest.approx(np.mean([t.lse_c for t in result.tracks]), rel=1e-12)
    assert result.metrics["offset"] == result.tracks[0].offset  # the longest (the first of equals)


def test_a_three_second_clip_has_no_face_track_until_min_track_is_lowered(
    short_clip: Path,
    clean_score: VideoScore,
    pipeline_scorer: PipelineScorers,
) -> None:
    failed = pipeline_scorer().score(short_clip)
    assert failed.error is not None and failed.metrics == {} and failed.tracks == ()
    assert failed.error.kind == "no_face_track"
    message = failed.error.message
    assert message.startswith(f"{short_clip}: no usable face track in its 75 frames")
    assert "75 detections (frames 0-74) in a scene of 75 frames" in message
    assert "min_track = 100" in message and "lower the setting min_track below 75" in message
    assert failed.error.facts == {
        "frames": 75,
        "frames_with_faces": 75,
        "scenes": 1,
        "longest_track": {
            "first_frame": 0,
            "last_frame": 74,
            "detections": 75,
            "face_size": None,
            "scene_length": 75,
            "rejected_by": "scene_length",
        },
        "limits": {"min_track": 100, "min_face_size": 100.0, "num_failed_det": 25},
    }
    assert clean_score.ok and [(t.start_frame, t.end_frame, t.windows) for t in clean_score.tracks] == [(0, 74, 70)]


def test_small_faces_say_which_limit_rejected_them(short_clip: Path, pipeline_scorer: PipelineScorers) -> None:
    failed = pipeline_scorer(min_track=50, min_face_size=150).score(short_clip)
    assert failed.error is not None and failed.error.kind == "no_face_track"
    longest = failed.error.facts["longest_track"]
    assert longest["rejected_by"] == "min_face_size" and 100 < longest["face_size"] <= 150
    assert f"lower the setting min_face_size below {longest['face_size']:.1f}" in failed.error.message


def test_s3fd_with_standin_weights_runs_end_to_end(
    make_clip: MakeClip, syncnet_weights: Path, s3fd_weights: Path
) -> None:
    """Stand-in S3FD finds random small boxes: the error must say exactly what it found."""
    settings = Settings(
        fidelity="clean", device="cpu", syncnet_weights=str(syncnet_weights), s3fd_weights=str(s3fd_weights)
    )
    scorer = Scorer(settings)
    assert [w.name for w in scorer.weights] == ["syncnet", "s3fd"]
    assert scorer.weights[1].custom is True and scorer.run.settings["detector"] is None
    result = scorer.score(make_clip("pipeline_tiny.mp4", TINY))
    assert result.error is not None and result.error.kind == "no_face_track"
    facts = result.error.facts
    assert facts["frames"] == 25 and facts["scenes"] == 1
    assert 0 < facts["frames_with_faces"] <= 25
    longest = facts["longest_track"]
    assert longest["rejected_by"] == "scene_length" and longest["scene_length"] == 25
    assert f"has {longest['detections']} detections" in result.error.message


def test_missing_s3fd_weights_offline_is_a_weights_error(
    syncnet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_lipsync.errors import WeightsError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LIPSYNC_HOME", raising=False)
    monkeypatch.delenv("LIPSYNC_S3FD_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="sfd_face.pth"):
        Scorer(Settings(device="cpu", syncnet_weights=str(syncnet_weights), offline=True))


class RecordingDetector:
    """The marker detector, remembering which frame numbers it was asked about."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def detect(self, frames: np.ndarray, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        assert len(frames) == len(indices)
        self.indices += [int(index) for index in indices]
        return [marker_boxes(frame) for frame in frames]


def detect_every(
    short_clip: Path, every: int, pipeline_scorer: PipelineScorers
) -> tuple[RecordingDetector, Detections, Tracking]:
    from pytest_lipsync.scoring.pipeline import FacePipeline
    from pytest_lipsync.sync.lse import Timings

    detector = RecordingDetector()
    settings = Settings(fidelity="clean", min_track=50, detect_every=every)
    pipeline = FacePipeline(detector, pipeline_scorer(min_track=50)._sync, settings)
    found = pipeline.detect(open_video(short_clip), Timings())
    return detector, found, pipeline.track(found)


def test_detect_every_1_calls_the_detector_on_every_frame_as_before(
    short_clip: Path, pipeline_scorer: PipelineScorers
) -> None:
    detector, found, _ = detect_every(short_clip, 1, pipeline_scorer)
    frames = [frame.to_ndarray() for frame in open_video(short_clip).decoded("bgr24")]
    assert detector.indices == list(range(75))
    assert len(found.boxes) == 75
    for boxes, frame in zip(found.boxes, frames, strict=True):
        assert boxes.tobytes() == marker_boxes(frame[..., ::-1]).tobytes()


@pytest.mark.parametrize("every", [2, 3])
def test_detect_every_n_calls_the_detector_on_every_nth_frame_and_tracks_across(
    short_clip: Path,
    every: int,
    pipeline_scorer: PipelineScorers,
) -> None:
    _, full, full_tracking = detect_every(short_clip, 1, pipeline_scorer)
    detector, found, tracking = detect_every(short_clip, every, pipeline_scorer)
    assert detector.indices == list(range(0, 75, every))  # across batches of 8: 0, 3, 6, 9, ...
    assert len(found.boxes) == 75 and found.scenes == full.scenes
    for frame, boxes in enumerate(found.boxes):
        assert boxes.tobytes() == (full.boxes[frame].tobytes() if frame % every == 0 else b"")
    (track,), (full_track,) = tracking.tracks, full_tracking.tracks
    last = 74 - 74 % every
    assert (track.first_frame, track.last_frame, track.detections) == (0, last, last // every + 1)
    np.testing.assert_allclose(track.boxes, full_track.boxes[: last + 1], rtol=0, atol=1.0)  # a still face


def test_detect_every_beyond_num_failed_det_is_refused_before_scoring(pipeline_scorer: PipelineScorers) -> None:
    from pytest_lipsync.errors import ConfigError

    with pytest.raises(ConfigError, match="'detect_every' is 26, more than num_failed_det = 25"):
        pipeline_scorer(detect_every=26)


def test_a_sampled_track_too_short_for_min_track_says_how_it_was_counted(
    short_clip: Path, pipeline_scorer: PipelineScorers
) -> None:
    scorer = pipeline_scorer(min_track=75, detect_every=3)  # 25 detections x 3 = 75, not more than 75
    assert scorer.run.settings["detect_every"] == 3
    failed = scorer.score(short_clip)
    assert failed.error is not None and failed.error.kind == "no_face_track"
    assert (
        "has 25 detections (frames 0-72), and min_track = 75 needs more than 75 (detect_every = 3: each "
        in failed.error.message
    )
    assert "lower the setting min_track below 75" in failed.error.message
    assert failed.error.facts["limits"]["detect_every"] == 3


@pytest.mark.parametrize("protocol", ["pipeline", "cropped"])
def test_decoding_yields_to_models_on_the_cpu(
    protocol: str, short_clip: Path, pipeline_scorer: PipelineScorers, scorers: Scorers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every decoding thread of a CPU run is a background one (lowest priority, see ``prefetch``)."""
    from pytest_lipsync.media import prefetch as module
    from pytest_lipsync.scoring import pipeline

    real = module.prefetch
    flags: list[bool] = []

    def recording(items: Iterator[object], depth: int = 2, *, background: bool = False) -> Iterator[object]:
        flags.append(background)
        return real(items, depth, background=background)

    monkeypatch.setattr(pipeline, "prefetch", recording)
    monkeypatch.setattr(module, "prefetch", recording)
    scorer = pipeline_scorer(min_track=50) if protocol == "pipeline" else scorers()
    assert scorer.score(short_clip).ok
    assert flags == ([True, True] if protocol == "pipeline" else [True])
