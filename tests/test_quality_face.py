"""``region = "face"``: PSNR/SSIM in the face crops of the generated video's tracks, against literal computations.

A marker-face clip in a wide grey border is the generated video; its ground truth is the same frames with
noise painted in the border, far outside the face, encoded again. The face crops (PROTOCOL 5 geometry at
the generated video's track) must give scikit-image's numbers on crops cut the literal way, and a PSNR far
above the whole frame's. The rest: crops of several tracks and a common prefix through ``compare_streams``,
a video without a face track, and where the region cannot work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.faces.tracking import build_tracks
from pytest_lipsync.media.decode import open_video
from pytest_lipsync.quality.accumulate import compare_streams
from pytest_lipsync.quality.face import FaceCropAccumulator, FaceRegions
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.quality.video import compare_videos
from pytest_lipsync.scoring.scorer import Scorer
from pytest_lipsync.settings import Settings
from tests.conftest import MakeClip
from tests.test_faces_pipeline import MARKER, SHORT, literal_track
from tests.test_faces_tracking import detections_of, literal_crop, moving_face

BORDER = 160  # a 160x160 face picture in a 480x480 frame: the crops (about 196 px) stay inside 80..400
NOISE_BAND = 80  # the ground truth's outer band of noise
FRAMED = replace(SHORT, border=BORDER)


def decoded(path: Path) -> np.ndarray:
    """The whole 25 fps RGB stream (fine for a 3 s test clip; the code under test streams)."""
    return np.concatenate(list(open_video(path).frames(pix_fmt="rgb24")))


def write_rgb(path: Path, frames: np.ndarray) -> Path:
    """A silent 25 fps x264 video of (N, H, W, 3) RGB frames."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "12", "preset": "veryfast"}
        for picture in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def literal_crops(
    frames: np.ndarray,
    numbers: Sequence[int],
    s: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
) -> list[np.ndarray]:
    """Frames ``numbers`` cut the literal PROTOCOL 5 way, the n-th at the track's n-th smoothed box."""
    return [literal_crop(frames[f], s[n], x[n], y[n]) for n, f in enumerate(numbers)]


def skimage_crop_means(gt_crops: list[np.ndarray], gen_crops: list[np.ndarray]) -> tuple[float, float]:
    """PROTOCOL 8 on crops: scikit-image per crop, then the mean over all of them."""
    psnrs = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(gt_crops, gen_crops)]
    ssims = [structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in zip(gt_crops, gen_crops)]
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.fixture(scope="module")
def framed_pair(make_clip: MakeClip, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(generated, ground truth): x264 with sound, and its frames with a noisy outer band, encoded again."""
    generated = make_clip("framed_face.mp4", FRAMED)
    truth = decoded(generated)
    noise = np.random.default_rng(5).integers(0, 256, truth.shape, dtype=np.uint8)
    inside = np.s_[:, NOISE_BAND:-NOISE_BAND, NOISE_BAND:-NOISE_BAND]
    noise[inside] = truth[inside]
    return generated, write_rgb(tmp_path_factory.mktemp("framed") / "truth.mp4", noise)


@pytest.fixture(scope="module")
def face_scorer(syncnet_weights: Path) -> Scorer:
    return Scorer(
        Settings(
            fidelity="clean",
            device="cpu",
            syncnet_weights=str(syncnet_weights),
            offline=True,
            detector=MARKER,
            min_track=50,
            region="face",
        )
    )


@pytest.mark.slow
def test_face_region_equals_skimage_on_literal_crops_and_ignores_the_background(
    framed_pair: tuple[Path, Path], face_scorer: Scorer
) -> None:
    generated, truth = framed_pair
    score = face_scorer.score(generated, reference=truth)
    assert score.ok, score.error
    quality = score.quality
    assert quality is not None and quality["region"] == "face"
    assert quality["tracks"] == [{"first_frame": 0, "last_frame": 74}] and quality["crops"] == 75

    gen_frames, gt_frames = decoded(generated), decoded(truth)
    geometry = literal_track(list(gen_frames))  # the generated video's track cuts both
    expected_psnr, expected_ssim = skimage_crop_means(
        literal_crops(gt_frames, *geometry), literal_crops(gen_frames, *geometry)
    )
    assert score.metrics["psnr"] == quality["psnr"]["mean"] == pytest.approx(expected_psnr, abs=1e-6)
    assert score.metrics["ssim"] == quality["ssim"]["mean"] == pytest.approx(expected_ssim, abs=1e-6)

    frame = compare_videos(generated, truth)
    assert frame.region == "frame" and "tracks" not in frame.to_json()
    assert score.metrics["psnr"] > frame.psnr.mean + 20, (
        score.metrics,
        frame.psnr.mean,
    )  # the noise sits in the background only


def test_crops_of_several_tracks_over_the_common_prefix_equal_skimage() -> None:
    """Two overlapping tracks, a generated stream two frames longer: every (track, frame) crop counts once."""
    rng = np.random.default_rng(3)
    gen = rng.integers(0, 256, (30, 120, 200, 3), dtype=np.uint8)
    gt = np.clip(gen.astype(np.int16) + rng.integers(-20, 21, gen.shape), 0, 255).astype(np.uint8)[:28]
    faces = (moving_face(range(30), 40.0, seed=1, x0=20.0), moving_face(range(10, 30), 30.0, seed=2, x0=120.0))
    tracks = build_tracks(detections_of(30, *faces), [(0, 30)], min_track=5, min_face_size=10).tracks
    regions = FaceRegions(tracks, crop_scale=0.4)
    settings = QualitySettings(region="face")
    result = compare_streams(
        (gen[i : i + 4] for i in range(0, 30, 4)),
        (gt[i : i + 3] for i in range(0, 28, 3)),
        settings,
        accumulator=FaceCropAccumulator(regions, settings),
    )
    assert [(span.first_frame, span.last_frame) for span in result.tracks] == [(0, 27), (10, 27)]
    crops = [(k, f) for k, track in enumerate(tracks) for f in range(track.first_frame, 28)]
    geometry = [(range(track.first_frame, 28), track.s, track.cx, track.cy) for track in tracks]
    gt_crops = [crop for numbers in geometry for crop in literal_crops(gt, *numbers)]
    gen_crops = [crop for numbers in geometry for crop in literal_crops(gen, *numbers)]
    expected_psnr, expected_ssim = skimage_crop_means(gt_crops, gen_crops)
    assert len(result.psnr.values) == len(crops) == 28 + 18
    assert result.psnr.mean == pytest.approx(expected_psnr, abs=1e-6)
    assert result.ssim.mean == pytest.approx(expected_ssim, abs=1e-6)
    document = result.to_json()
    assert document["crops"] == 46 and document["frames"] == 28 and document["length_mismatch"] == 2
    worst = document["psnr"]["worst"]
    assert crops[result.psnr.worst_frame] == (worst["track"], worst["frame"])


def test_a_video_without_a_face_track_is_a_no_face_track_quality_error(
    make_clip: MakeClip, framed_pair: tuple[Path, Path], face_scorer: Scorer
) -> None:
    faceless = make_clip("framed_faceless.mp4", replace(FRAMED, marker=False))
    score = face_scorer.score(faceless, reference=framed_pair[1])
    assert score.quality is not None and score.quality["region"] == "face"
    assert score.quality["error"]["kind"] == "no_face_track"
    assert "psnr" not in score.metrics and score.error is not None and score.error.kind == "no_face_track"


def test_cropped_protocol_refuses_the_face_region_before_loading_weights(tmp_path: Path) -> None:
    settings = Settings(protocol="cropped", region="face", offline=True, syncnet_weights=str(tmp_path / "none.model"))
    with pytest.raises(ConfigError, match="protocol = 'cropped' has none: its frames already are the face crops"):
        Scorer(settings)
