"""``lipsync score --reference``: PSNR/SSIM columns and JSON beside LSE, a video without ground truth, bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.quality.settings import QualitySettings
from pytest_lipsync.quality.video import compare_videos
from pytest_lipsync.results import Report


def score(*args: str, weights: Path) -> int:
    common = ["--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "-q"]
    return main(["score", *args, *common, "--syncnet-weights", str(weights)])


def test_reference_adds_columns_and_json_and_reports_missing_ground_truth(
    quality_trees: tuple[Path, Path], syncnet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, gt = quality_trees
    results = tmp_path / "scores.json"
    flags = ["--reference", str(gt), "--ssim-window", "gaussian11", "--json", str(results)]
    code = score(str(out), *flags, weights=syncnet_weights)

    assert code == 1  # the video without ground truth fails
    table = capsys.readouterr().out.splitlines()
    columns = ["video", "LSE-D", "LSE-C", "offset", "PSNR", "SSIM", "frames", "seconds", "result", "detail"]
    assert table[0].split() == columns
    gaussian = QualitySettings(ssim_window="gaussian11")
    expected = compare_videos(out / "talks" / "a.avi", gt / "talks" / "a.mkv", gaussian)
    good = next(line for line in table if line.startswith(str(out / "talks" / "a.avi"))).split()
    assert good[4:6] == [f"{expected.psnr.mean:.2f}", f"{expected.ssim.mean:.4f}"] and good[-1] == "scored"
    orphan = next(line for line in table if line.startswith(str(out / "talks" / "orphan.avi")))
    assert "error   no_reference: " in orphan and orphan.endswith("...")  # the JSON has the whole message
    assert orphan.split()[1] != "-"  # its LSE-D is still shown

    document = json.loads(results.read_text())
    assert Report.from_dict(document).to_dict() == document
    assert document["settings"]["ssim_window"] == "gaussian11" and document["settings"]["region"] == "frame"
    videos = {Path(video["path"]).name: video for video in document["videos"]}
    assert videos["a.avi"]["metrics"]["ssim"] == expected.ssim.mean
    assert set(videos["a.avi"]["metrics"]) == {"lse_d", "lse_c", "offset", "psnr", "ssim"}
    assert videos["a.avi"]["quality"]["match"] == "stem" and videos["a.avi"]["quality"]["frames"] == 25
    assert videos["orphan.avi"]["error"]["kind"] == "no_reference"
    assert set(videos["orphan.avi"]["metrics"]) == {"lse_d", "lse_c", "offset"}


def test_without_reference_the_table_has_no_quality_columns(
    quality_trees: tuple[Path, Path], syncnet_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = quality_trees
    assert score(str(out / "talks" / "a.avi"), weights=syncnet_weights) == 0
    assert "PSNR" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--max-length-mismatch", "-1"], "--max-length-mismatch is invalid: setting 'max_length_mismatch' is -1"),
        (["--reference", "nowhere"], "nowhere: the reference directory does not exist"),
    ],
)
def test_bad_quality_settings_are_usage_errors(
    quality_trees: tuple[Path, Path],
    syncnet_weights: Path,
    flags: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = quality_trees
    assert score(str(out), *flags, weights=syncnet_weights) == 2
    assert words in capsys.readouterr().err
