"""``lipsync visualize``: the annotated copy has the input's frames, duration and sound, its boxes sit on the
crop windows of PROTOCOL 5 written out, their colours follow the confidence band, frames without a track are
marked, and a bad input is the typed error with exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.reports.annotate import NO_TRACK_BACKGROUND, DrawnTrack, annotate_frame, box_thickness
from pytest_lipsync.reports.confidence import AMBER, GREEN, RED, ConfidenceBand, band_for, confidence_at
from pytest_lipsync.results import TrackScore
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip
from tests.indexed import IndexedClip, read_index
from tests.test_faces_pipeline import MARKER, SHORT, literal_track

FLAGS = ["--detector", MARKER, "--offline", "--device", "cpu", "--fidelity", "clean"]
NO_FACE = ClipSpec(seconds=1.0, width=96, height=72)
FRAMED = replace(SHORT, border=64)  # room around the face: the whole crop window is inside the picture


def _decoded(path: Path) -> list[np.ndarray]:
    from pytest_lipsync.media.decode import open_video

    return [frame.to_ndarray() for frame in open_video(path).decoded("bgr24")]


def _durations(path: Path) -> tuple[float, ...]:
    """The container's duration and each stream's, in seconds."""
    import av

    with av.open(str(path)) as container:
        streams = sorted(container.streams, key=lambda stream: stream.type)
        return (container.duration / 1e6, *(float(s.duration * s.time_base) for s in streams))


def _codecs(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return sorted(stream.codec_context.name for stream in container.streams)


@pytest.fixture(scope="module")
def annotated(
    make_clip: MakeClip, syncnet_weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, str]]:
    """The short marker clip, its annotated copy by the command, and what the command printed."""
    clip = make_clip("pipeline_framed.mp4", FRAMED)
    out = tmp_path_factory.mktemp("annotated") / "videos" / "framed.mp4"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out.parent.parent)  # no pyproject.toml above: the default band
        import io
        import sys

        printed = io.StringIO()
        patch.setattr(sys, "stdout", printed)
        code = main(
            [
                "visualize",
                str(clip),
                "-o",
                str(out),
                *FLAGS,
                "--syncnet-weights",
                str(syncnet_weights),
                "--min-track",
                "50",
            ]
        )
    assert code == 0
    yield clip, out, printed.getvalue()


def test_the_copy_has_the_inputs_frames_duration_and_sound(annotated: tuple[Path, Path, str]) -> None:
    clip, out, printed = annotated
    assert len(_decoded(out)) == len(_decoded(clip)) == 75
    assert _durations(out) == pytest.approx(_durations(clip), abs=1e-3)
    assert _codecs(out) == ["aac", "h264"]
    assert f"annotated video written to {out}: 75 frames, 1 face track(s), 0 frames without a track" in printed
    assert [path.name for path in out.parent.iterdir()] == ["framed.mp4"]  # no temporary file left


def test_boxes_sit_on_the_literal_crop_windows(annotated: tuple[Path, Path, str]) -> None:
    clip, out, _ = annotated
    source, drawn = _decoded(clip), _decoded(out)
    numbers, s, x, y = literal_track(source)
    height, width = source[0].shape[:2]
    thick = box_thickness(height, width)
    for index in (5, 37, 70):
        n = numbers.index(index)
        pad = int(s[n] * 1.8)
        top = int(y[n] + pad - s[n]) - pad
        left, right = int(x[n] + pad - s[n] * 1.4) - pad, int(x[n] + pad + s[n] * 1.4) - pad
        assert top > 3 and left > 3 and right < width - 3  # the edges checked are inside the picture
        near_right, middle_y = right - 12, top + 60  # right of the caption
        edges = [(top + thick // 2, near_right), (middle_y, left + thick // 2), (middle_y, right - 1 - thick // 2)]
        outside = [(top - 3, near_right), (middle_y, left - 3), (middle_y, right + 2)]
        inside = [(top + thick + 3, near_right), (middle_y, left + thick + 3), (middle_y, right - thick - 4)]
        colours = [np.array(c) for c in (RED, AMBER, GREEN)]
        for row, column in edges:
            pixel = drawn[index][row, column].astype(int)
            assert min(np.abs(pixel - colour).max() for colour in colours) < 40, (index, row, column, pixel)
        for row, column in outside + inside:
            assert np.abs(drawn[index][row, column].astype(int) - source[index][row, column]).max() < 24, (
                index,
                row,
                column,
            )


def test_a_video_without_a_track_is_marked_on_every_frame(
    make_clip: MakeClip,
    syncnet_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = make_clip("no_face.mp4", NO_FACE)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "no_face.mp4"
    assert main(["visualize", str(clip), "-o", str(out), *FLAGS, "--syncnet-weights", str(syncnet_weights)]) == 0
    assert "25 frames, 0 face track(s), 25 frames without a track" in capsys.readouterr().out
    frames = _decoded(out)
    assert len(frames) == 25
    assert all(np.abs(frame[3, 3].astype(int) - NO_TRACK_BACKGROUND).max() < 24 for frame in frames)
    assert _durations(out) == pytest.approx(_durations(clip), abs=1e-3)


@pytest.mark.parametrize(
    ("content", "reason"), [(None, "no such file"), (b"not a video", "cannot be opened as a video")]
)
def test_a_missing_or_unreadable_video_is_the_typed_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
    reason: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    video, out = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    if content is not None:
        video.write_bytes(content)
    assert main(["visualize", str(video), "-o", str(out), *FLAGS]) == 2
    assert capsys.readouterr().err.startswith(f"lipsync: error: {video}: {reason}")
    assert not out.exists()


def test_the_cropped_protocol_has_no_tracks_to_draw(
    make_clip: MakeClip,
    syncnet_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.lipsync]\nprotocol = "cropped"\n')
    clip = make_clip("no_face.mp4", NO_FACE)
    # Refused before the models load: weights that do not exist are never looked for.
    flags = ["--offline", "--device", "cpu", "--syncnet-weights", str(tmp_path / "none.model")]
    assert main(["visualize", str(clip), "-o", str(tmp_path / "out.mp4"), *flags]) == 2
    assert "protocol = 'cropped' has no face tracks to draw" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused_before_scoring(
    make_clip: MakeClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    clip = make_clip("no_face.mp4", NO_FACE)
    flags = ["--offline", "--device", "cpu", "--syncnet-weights", str(tmp_path / "none.model")]
    (tmp_path / "taken").mkdir()
    assert main(["visualize", str(clip), "-o", str(tmp_path / "taken"), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"lipsync: error: {tmp_path / 'taken'}: is a directory, not a file")
    (tmp_path / "file").write_text("")
    assert main(["visualize", str(clip), "-o", str(tmp_path / "file" / "out.mp4"), *flags]) == 2
    assert "out.mp4: cannot be written" in capsys.readouterr().err


def test_the_copy_shows_the_frames_its_scores_frame_rule_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30 fps video under the reference's ``ffmpeg -r 25``: the copy's frame i is the scores' frame i."""
    import av

    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.reports import annotate

    monkeypatch.setattr(annotate, "annotate_frame", lambda picture, *_: (picture, True))  # nothing over the stripes
    clip = IndexedClip(
        ".mkv", Fraction(30), Fraction(1, 1000), tuple(round(j * 1000 / 30) for j in range(45)), audio_rate=16000
    )
    source = open_video(clip.write(tmp_path / "indexed_30fps.mkv"))
    annotate.write_annotated(
        source, tmp_path / "copy.mp4", (), ConfidenceBand(5.0, "gate"), annotate.h264_encoder(), "ffmpeg_r25"
    )
    with av.open(str(tmp_path / "copy.mp4")) as container:
        shown = [read_index(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]
    picked = [read_index(frame.to_ndarray()) for frame in source.decoded("bgr24", rule="ffmpeg_r25")]
    assert shown == picked != [read_index(frame.to_ndarray()) for frame in source.decoded("bgr24")]


def test_box_colour_follows_the_band_and_the_window_centred_on_the_frame() -> None:
    confidence = (0.0, 1.5, 2.5, 3.0, 4.0, 4.5, 9.0)  # windows 0..6 of a track starting at frame 10
    score = TrackScore(10, 20, 7, 7.0, 3.0, 1, (), confidence)
    track = DrawnTrack(1, score, 10, np.tile([20, 20, 60, 60], (11, 1)))
    band = ConfidenceBand(3.0)
    seen = {}
    for frame in range(10, 21):
        picture, covered = annotate_frame(np.zeros((80, 80, 3), np.uint8), frame, [track], band)
        assert covered
        seen[frame] = tuple(int(v) for v in picture[59, 40])  # the bottom edge, away from the caption
    expected = [band.colour(confidence[min(max(k - 2, 0), 6)]) for k in range(11)]
    assert list(seen.values()) == expected
    assert expected[:4] == [RED, RED, RED, RED] and expected[4:7] == [AMBER, AMBER, AMBER] and expected[-1] == GREEN
    assert confidence_at((), 3) is None
    picture, covered = annotate_frame(np.zeros((80, 80, 3), np.uint8), 21, [track], band)
    assert not covered and tuple(int(v) for v in picture[2, 2]) == NO_TRACK_BACKGROUND


def test_the_band_is_the_gates_lse_c_min_for_that_video() -> None:
    from pytest_lipsync.gate.rules import GateRules, Override, Thresholds

    assert band_for(None, "a.mp4") == ConfidenceBand(3.0, "default")
    rules = GateRules(Thresholds(lse_c_min=5.0), overrides=(Override("hard/*", {"lse_c_min": 2.0}),))
    assert band_for(rules, "a.mp4") == ConfidenceBand(5.0, "gate")
    assert band_for(rules, "hard/b.mp4").threshold == 2.0
    assert (band_for(rules, "a.mp4").low, band_for(rules, "a.mp4").high) == (4.0, 6.0)


def test_reference_fidelity_tracks_move_back_by_the_replays_repeated_frames(make_clip: MakeClip) -> None:
    from pytest_lipsync.faces.tracking import Track
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.media.reencode import leading_repeats
    from pytest_lipsync.reports.annotate import drawn_tracks
    from pytest_lipsync.scoring.pipeline import PipelineResult, replay_shift

    source = open_video(make_clip("no_face.mp4", NO_FACE))  # 96x72, 16 kHz sound
    assert (
        (replay_shift(source, reference=True), replay_shift(source, reference=False))
        == (leading_repeats(16000), 0)
        == (2, 0)
    )
    s, cx, cy = np.full(3, 10.0), np.array([30.0, 31.0, 32.0]), np.full(3, 20.0)
    track = Track(np.arange(5, 8), np.zeros((3, 4)), s, cx, cy, 3)
    score = TrackScore(5, 7, 1, 7.0, 3.0, 0, (), (1.0,))
    (drawn,) = drawn_tracks(PipelineResult((score,), 10, 10, (track,)), source, 0.4, shift=2)
    assert drawn.first_frame == 3 and drawn.window(2) is None and drawn.window(6) is None
    # PROTOCOL 5 written out: rows cy - s to cy + s (1 + 2 * 0.4), columns cx -+ s (1 + 0.4), truncated.
    assert drawn.window(3).tolist() == [16, 10, 44, 38] and drawn.window(5).tolist() == [18, 10, 46, 38]  # type: ignore[union-attr]  # a None window fails the test here
