"""Quality from files: ``compare_videos`` on encoded clips, the settings that reach it, and the ground-truth step
that adds it to a score (pairing, missing and broken ground truth) without SyncNet."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_lipsync.errors import ConfigError, ReferenceMismatchError, ScoringTimeoutError, UnreadableError
from pytest_lipsync.media.decode import open_video
from pytest_lipsync.quality.ground_truth import GroundTruth
from pytest_lipsync.quality.pairing import ReferenceTree, match_reference
from pytest_lipsync.quality.psnr import PSNR_CAP_DB
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.quality.video import compare_videos
from pytest_lipsync.results import VideoScore
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
from tests.conftest import MakeClip

SMALL = ClipSpec(seconds=1.0, width=96, height=72)


def decoded(path: Path) -> np.ndarray:
    """The whole 25 fps RGB stream (fine for a 1 s test clip; the code under test never does this)."""
    return np.concatenate(list(open_video(path).frames(pix_fmt="rgb24")))


def skimage_means(gt: np.ndarray, gen: np.ndarray) -> tuple[float, float]:
    """scikit-image per frame, then the arithmetic mean: PROTOCOL section 8 written out."""
    psnrs = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(gt, gen)]
    ssims = [structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in zip(gt, gen)]
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.fixture(scope="module")
def pair(make_clip: MakeClip) -> tuple[Path, Path]:
    """Ground truth (x264, crf 12) and a degraded copy of the same picture (MPEG-4 Part 2 at its default rate),
    the clips of the ``quality_trees`` fixture."""
    return make_clip("truth.mkv", SMALL), make_clip("degraded.avi", SMALL)


def test_degraded_copy_equals_skimage_per_frame_then_mean(pair: tuple[Path, Path]) -> None:
    truth, degraded = pair
    result = compare_videos(degraded, truth, batch_size=3)
    expected_psnr, expected_ssim = skimage_means(decoded(truth), decoded(degraded))
    assert result.frames == 25 and result.lengths.mismatch == 0 and result.identical_frames == 0
    assert 20 < result.psnr.mean < 45 and 0.5 < result.ssim.mean < 0.99  # degraded, not identical
    assert result.psnr.mean == pytest.approx(expected_psnr, abs=1e-6)
    assert result.ssim.mean == pytest.approx(expected_ssim, abs=1e-6)


def test_identical_videos_have_a_capped_psnr_in_standard_json(pair: tuple[Path, Path]) -> None:
    truth, _ = pair
    result = compare_videos(truth, truth)
    document = json.loads(json.dumps(result.to_json(), allow_nan=False))  # raises on Infinity / NaN
    assert document["psnr"]["mean"] == document["psnr"]["worst"]["value"] == PSNR_CAP_DB
    assert document["identical_frames"] == document["frames"] == 25
    assert document["ssim"]["mean"] == pytest.approx(1.0, abs=1e-12)


def test_sizes_must_agree_unless_the_reference_is_resized(pair: tuple[Path, Path], make_clip: MakeClip) -> None:
    truth, _ = pair
    small = make_clip("small.mkv", ClipSpec(seconds=1.0, width=64, height=48))
    with pytest.raises(ReferenceMismatchError) as raised:
        compare_videos(small, truth)
    assert raised.value.message.startswith(f"{small}: is 64x48 but its reference {truth} is 96x72")

    result = compare_videos(small, truth, QualitySettings(resize_reference=True))
    shrunk = np.stack([cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA) for frame in decoded(truth)])
    expected_psnr, expected_ssim = skimage_means(shrunk, decoded(small))
    assert result.resized_reference is True
    assert result.psnr.mean == pytest.approx(expected_psnr, abs=1e-6)
    assert result.ssim.mean == pytest.approx(expected_ssim, abs=1e-6)


def test_lengths_within_the_tolerance_compare_the_prefix_and_beyond_it_fail(
    pair: tuple[Path, Path], make_clip: MakeClip
) -> None:
    truth, _ = pair
    longer = make_clip("longer.mkv", ClipSpec(seconds=1.08, width=96, height=72))  # 27 frames
    result = compare_videos(longer, truth)
    assert (result.frames, result.lengths.generated_frames, result.lengths.reference_frames) == (25, 27, 25)
    assert result.to_json()["length_mismatch"] == 2

    with pytest.raises(ReferenceMismatchError) as raised:
        compare_videos(longer, truth, QualitySettings(max_length_mismatch=1))
    assert f"has 27 frames at 25 fps but its reference {truth} has 25" in raised.value.message
    assert raised.value.path == str(longer)


def test_an_unreadable_reference_is_a_mismatch_naming_both_files(pair: tuple[Path, Path], tmp_path: Path) -> None:
    truth, _ = pair
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(ReferenceMismatchError) as raised:
        compare_videos(truth, broken)
    assert raised.value.message.startswith(f"{truth}: its reference {broken} cannot be compared: cannot be opened")
    assert raised.value.facts["reference_error"] == "unreadable"
    with pytest.raises(UnreadableError):  # the generated video's own failure keeps its kind
        compare_videos(broken, truth)


def test_face_region_without_a_way_to_the_face_tracks_is_a_config_error(pair: tuple[Path, Path]) -> None:
    settings = Settings(region="face")
    assert settings.quality.region == "face"
    with pytest.raises(ConfigError, match="region 'face' measures inside the generated video's face tracks"):
        compare_videos(pair[1], pair[0], settings.quality)
    with pytest.raises(ConfigError, match="no way to find them was given"):
        GroundTruth(settings)


# ---------------------------------------------------------------------------------------------- settings


def test_settings_carry_the_quality_variant() -> None:
    settings = Settings(reference="gt", ssim_window="gaussian11", color="y", resize_reference=True)
    assert settings.quality == QualitySettings(ssim_window="gaussian11", color="y", resize_reference=True)
    recorded = settings.result_settings()
    assert {key: recorded[key] for key in ("ssim_window", "color", "region", "max_length_mismatch")} == {
        "ssim_window": "gaussian11",
        "color": "y",
        "region": "frame",
        "max_length_mismatch": 2,
    }
    assert "reference" not in recorded  # where the ground truth lives moves no number
    assert "ssim_window" not in Settings().result_settings()  # no reference, no variant


@pytest.mark.parametrize(
    ("change", "words"), [({"color": "ycbcr"}, "color must be one of"), ({"region": "mouth"}, "region must be one of")]
)
def test_settings_validate_quality_keys_through_quality_settings(change: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings(**change)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test


# ---------------------------------------------------------------------------------------------- ground truth


LSE = {"lse_d": 7.5, "lse_c": 6.0, "offset": 0.0}


def test_scores_gain_psnr_ssim_and_a_quality_section(quality_trees: tuple[Path, Path], pair: tuple[Path, Path]) -> None:
    out, gt = quality_trees
    video = out / "talks" / "a.avi"
    found = match_reference(video, video.relative_to(out.parent).as_posix(), out, ReferenceTree.scan(gt))
    score = GroundTruth(Settings(reference=str(gt))).add_to(VideoScore(str(video), metrics=LSE), video, found)
    expected = compare_videos(pair[1], pair[0])
    assert score.ok and score.metrics == {**LSE, "psnr": expected.psnr.mean, "ssim": expected.ssim.mean}
    assert score.quality is not None
    assert score.quality["reference"] == str(gt / "talks" / "a.mkv") and score.quality["match"] == "stem"
    assert score.quality["psnr"]["per_frame"] == list(expected.psnr.values)
    variant = (score.quality["ssim_window"], score.quality["color"], score.quality["region"])
    assert variant == ("uniform7", "rgb", "frame")
    assert score.quality["error"] is None and "quality" in score.timings
    document = json.loads(json.dumps(score.to_dict(), allow_nan=False))
    assert VideoScore.from_dict(document).to_dict() == document and document["quality"] == score.quality


def test_a_video_without_ground_truth_fails_as_such_and_keeps_lse(quality_trees: tuple[Path, Path]) -> None:
    out, gt = quality_trees
    video = out / "talks" / "orphan.avi"
    found = match_reference(video, video.relative_to(out.parent).as_posix(), out, ReferenceTree.scan(gt))
    score = GroundTruth(Settings(reference=str(gt))).add_to(VideoScore(str(video), metrics=LSE), video, found)
    assert score.error is not None and score.error.kind == "no_reference"
    assert score.error.message.startswith(f'{video}: has no ground truth in {gt}: no "talks/orphan.avi" there')
    assert score.metrics == LSE
    assert score.quality is not None and score.quality["match"] == "none" and score.quality["reference"] is None
    assert score.quality["error"]["kind"] == "no_reference"


def test_a_mismatched_ground_truth_fails_the_video_but_keeps_lse(pair: tuple[Path, Path], make_clip: MakeClip) -> None:
    small = make_clip("small.mkv", ClipSpec(seconds=1.0, width=64, height=48))
    score = GroundTruth(Settings()).add_to(VideoScore(str(small), metrics=LSE), small, reference=pair[0])
    assert score.error is not None and score.error.kind == "reference_mismatch"
    assert score.error.facts["generated_size"] == [64, 48] and score.error.facts["reference_size"] == [96, 72]
    assert score.metrics == LSE and score.quality is not None and score.quality["match"] == "explicit"


def test_an_earlier_failure_stays_the_video_error_and_quality_is_still_measured(pair: tuple[Path, Path]) -> None:
    from pytest_lipsync.results import ScoreError

    too_short = VideoScore(str(pair[1]), error=ScoreError("too_short", "too short to score"))
    score = GroundTruth(Settings()).add_to(too_short, pair[1], reference=pair[0])
    assert score.error == too_short.error
    assert set(score.metrics) == {"psnr", "ssim"} and score.quality is not None and score.quality["error"] is None


def test_ground_truth_applies_the_runs_limits_to_both_files(pair: tuple[Path, Path]) -> None:
    """A hostile reference is refused before decoding, and the comparison stops at the timeout like LSE does."""
    truth, generated = pair  # 96x72 each
    score = GroundTruth(Settings(max_pixels=96 * 72)).add_to(VideoScore(str(generated), metrics=LSE), generated, truth)
    assert score.ok
    oversized = GroundTruth(Settings(max_pixels=96 * 72 - 1)).add_to(VideoScore(str(generated)), generated, truth)
    assert oversized.error is not None and oversized.error.kind == "too_large"  # the generated video's own kind
    stopped = GroundTruth(Settings(timeout=1e-9)).add_to(VideoScore(str(generated)), generated, truth)
    assert stopped.error is not None and stopped.error.kind == "timeout"
    assert "over the time limit of 1e-09 s" in stopped.error.message


def test_no_reference_requested_leaves_the_score_alone(pair: tuple[Path, Path]) -> None:
    score = VideoScore(str(pair[1]), metrics=LSE)
    assert GroundTruth(Settings()).add_to(score, pair[1]) is score


def test_a_reference_past_the_time_limit_is_a_timeout_not_a_mismatch(tmp_path: Path) -> None:
    """A timeout says the machine was slow, not that the pair differs: it must not be cached as the pair's verdict."""
    from pytest_lipsync.limits import VideoLimits
    from pytest_lipsync.quality.video import _reference_frames

    clip = tmp_path / "clip.mp4"
    write_clip(clip, ClipSpec(seconds=1.0))
    with pytest.raises(ScoringTimeoutError):
        list(_reference_frames(clip, clip, 8, VideoLimits(timeout=1e-9)))
