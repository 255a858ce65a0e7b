"""LPIPS, CPBD and FID as metrics of the gate: declared once in the metric table, turned on by ``metrics`` or a
rule, and reported through ``lipsync score``, ``lipsync gate`` and the pytest gate exactly as their literal
definitions compute them.

The networks carry stand-in weights in the released layouts (tests/quality_standins.py): the numbers test the
arithmetic and the plumbing, never perception. The expected values come from the literal re-implementations of
tests/test_quality_lpips.py (LPIPS layer by layer, float64), tests/test_quality_cpbd.py (CPBD step by step) and
tests/test_quality_fid.py (the Fréchet distance by eigenvalues), on the frames the package's decoder gives;
FID's features are the Inception network's, which tests/test_quality_fid.py proves equal to its literal one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_lipsync.cli.app import main
from pytest_lipsync.config.keys import flat_keys
from pytest_lipsync.config.resolution import Layer, resolve
from pytest_lipsync.errors import ConfigError, WeightsError
from pytest_lipsync.gate.rules import Thresholds
from pytest_lipsync.media.decode import open_video
from pytest_lipsync.metrics import METRICS, OPT_IN
from pytest_lipsync.models.registry import ALEXNET, FID_INCEPTION, LPIPS_ALEX, QUALITY
from pytest_lipsync.models.resolve import resolve_weights
from pytest_lipsync.quality.fid import load_inception_features
from pytest_lipsync.quality.generated import measure_generated
from pytest_lipsync.quality.measures import cpbd_measure
from pytest_lipsync.session.sources import ScoreService
from pytest_lipsync.settings import Settings
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip
from tests.quality_standins import write_quality_weights
from tests.test_quality_cpbd import literal_cpbd, pillow_gray
from tests.test_quality_fid import literal_frechet
from tests.test_quality_lpips import ALEXNET_LAYERS, literal_lpips

pytest_plugins = ["pytester"]

SPEC = ClipSpec(seconds=0.4, width=96, height=72)
STRIDE = 3  # FID reads frames 0, 3, 6, 9 of each 10-frame clip


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_quality_weights(tmp_path_factory.mktemp("quality-weights"))


@pytest.fixture
def quality_env(standins: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """The stand-ins named by their variables, an empty cache of our own, no other LIPSYNC_* variable."""
    for variable in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for variable, path in standins.items():
        monkeypatch.setenv(variable, str(path))
    return standins


@pytest.fixture
def trees(make_clip: MakeClip, tmp_path: Path) -> tuple[Path, Path]:
    """``out/a.avi`` (an MPEG-4 Part 2 copy of ``gt/a.mkv``), ``out/b.mkv`` (another clip's frames against
    ``gt/b.mkv``), ``out/same.mkv`` (a byte copy of ``gt/same.mkv``)."""
    truth_a, degraded = make_clip("mg_truth_a.mkv", SPEC), make_clip("mg_degraded_a.avi", SPEC)
    truth_b = make_clip("mg_truth_b.mkv", ClipSpec(seconds=0.4, width=96, height=72, seed=4))
    other = make_clip("mg_other_b.mkv", ClipSpec(seconds=0.4, width=96, height=72, seed=5))
    out, gt = tmp_path / "out", tmp_path / "gt"
    out.mkdir()
    gt.mkdir()
    for source, target in [
        (degraded, out / "a.avi"),
        (truth_a, gt / "a.mkv"),
        (other, out / "b.mkv"),
        (truth_b, gt / "b.mkv"),
        (truth_a, out / "same.mkv"),
        (truth_a, gt / "same.mkv"),
    ]:
        shutil.copyfile(source, target)
    return out, gt


def frames_of(path: Path) -> np.ndarray:
    """Every 25 fps RGB frame, as the quality passes decode them."""
    return np.concatenate(list(open_video(path).frames(8, pix_fmt="rgb24")))


def expected_lpips(generated: Path, reference: Path, standins: dict[str, Path]) -> float:
    trunk = torch.load(standins[ALEXNET.env_var], weights_only=True)
    heads = torch.load(standins[LPIPS_ALEX.env_var], weights_only=True)
    pairs = zip(frames_of(reference), frames_of(generated))
    values = [literal_lpips(gt, gen, trunk, heads, ALEXNET_LAYERS) for gt, gen in pairs]
    return math.fsum(values) / len(values)


def expected_cpbd(generated: Path) -> float:
    values = [literal_cpbd(pillow_gray(frame)) for frame in frames_of(generated)]
    return math.fsum(values) / len(values)


def expected_fid(pairs: list[tuple[Path, Path]], standins: dict[str, Path]) -> float:
    """np.mean and np.cov of the sampled frames' features, pooled per side, and the literal Fréchet distance."""
    features = load_inception_features(resolve_weights(FID_INCEPTION, standins[FID_INCEPTION.env_var]))
    generated = np.concatenate([features(frames_of(video)[::STRIDE]) for video, _ in pairs])
    reference = np.concatenate([features(frames_of(truth)[::STRIDE]) for truth in dict.fromkeys(t for _, t in pairs)])
    mu1, mu2 = generated.mean(axis=0), reference.mean(axis=0)
    return literal_frechet(mu1, np.cov(generated, rowvar=False), mu2, np.cov(reference, rowvar=False))


def relative(got: float, expected: float) -> float:
    return abs(got - expected) / max(abs(expected), 1e-12)


# --- the metric table and the settings --------------------------------------------------------------------


def test_every_gated_metric_has_its_threshold_key_with_its_range() -> None:
    fields = Thresholds.__dataclass_fields__
    for metric in METRICS:
        if metric.threshold_key is None:
            continue
        assert metric.threshold_key in fields and metric.threshold_key in flat_keys()
    assert list(fields)[-3:] == ["lpips_max", "cpbd_min", "fid_max"]
    with pytest.raises(ConfigError, match="'cpbd_min' is 1.5. Use a finite number from 0 to 1"):
        Thresholds(cpbd_min=1.5)
    with pytest.raises(ConfigError, match="'lpips_max' is -0.1. Use a finite number >= 0"):
        Thresholds(lpips_max=-0.1)


@pytest.mark.parametrize(
    ("values", "metrics"),
    [
        ({"thresholds": {"lpips_max": 0.2}}, ("lpips",)),
        ({"regression": {"cpbd": "-0.05"}}, ("cpbd",)),
        ({"overrides": [{"glob": "*.mp4", "lpips_max": 0.3}]}, ("lpips",)),
        ({"thresholds": {"fid_max": 30.0}, "metrics": ["cpbd"]}, ("cpbd", "fid")),
        ({"thresholds": {"psnr_min": 20.0}}, ()),
    ],
)
def test_a_rule_on_an_opt_in_metric_turns_it_on(values: dict[str, object], metrics: tuple[str, ...]) -> None:
    config = resolve([Layer("pyproject", values, "pyproject.toml")], Path("."))
    assert config.settings.metrics == metrics


def test_metrics_come_from_every_source_in_the_tables_order() -> None:
    env = Layer("env", {"metrics": ["fid", "lpips"]})
    assert resolve([env], Path(".")).settings.metrics == ("lpips", "fid")
    flag = Layer("flag", {"metrics": ["cpbd"], "lpips_net": "vgg", "fid_stride": "5", "fid_max_frames": "100"})
    settings = resolve([env, flag], Path(".")).settings
    assert (settings.metrics, settings.lpips_net, settings.fid_stride, settings.fid_max_frames) == (
        ("cpbd",),
        "vgg",
        5,
        100,
    )


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        (
            Layer("pyproject", {"metrics": ["lpips", "lpip"]}, "/p/pyproject.toml"),
            "[tool.lipsync] metrics in /p/pyproject.toml is invalid: setting 'metrics' names 'lpip', which is not a "
            "metric to turn on",
        ),
        (Layer("env", {"metrics": ["psnr"]}), "LIPSYNC_METRICS is invalid: setting 'metrics' names 'psnr'"),
        (Layer("flag", {"fid_stride": "0"}), "--lipsync-fid-stride is invalid: setting 'fid_stride' is 0"),
        (Layer("flag", {"fid_max_frames": "1"}), "--lipsync-fid-max-frames is invalid: setting 'fid_max_frames' is 1"),
        (Layer("option", {"lpips_net": "squeeze"}), "--lpips-net must be one of 'alex', 'vgg', not 'squeeze'"),
        (
            Layer("pyproject", {"overrides": [{"glob": "*", "fid_max": 9.0}]}, "p.toml"),
            "overrides[0].fid_max in p.toml limits a number of the whole dataset",
        ),
        (
            Layer("pyproject", {"regression": {"fid": "+1"}}, "p.toml"),
            "regression.fid in p.toml is a regression rule on FID, which is one number per dataset",
        ),
    ],
)
def test_bad_metric_settings_name_the_key_and_where_it_was_set(layer: Layer, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve([layer], Path("."))
    assert words in raised.value.message


def test_results_and_cache_keys_record_the_metrics_only_when_one_is_on() -> None:
    plain = Settings(protocol="cropped")
    assert "metrics" not in plain.result_settings()  # results made before the metrics existed stay comparable
    lpips = plain.with_metrics(["lpips"])
    assert lpips.result_settings()["metrics"] == ["lpips"] and lpips.result_settings()["lpips_net"] == "alex"
    assert lpips.replace(lpips_net="vgg").result_settings() != lpips.result_settings()
    assert "metrics" not in plain.with_metrics(["fid"]).result_settings()  # per dataset: recorded with its value


def test_a_run_that_asks_for_none_resolves_and_imports_nothing_new(
    syncnet_weights: Path, quality_env: dict[str, Path], make_clip: MakeClip, tmp_path: Path
) -> None:
    service = ScoreService()
    plain = Settings(protocol="cropped", syncnet_weights=str(syncnet_weights), offline=True)
    assert [record.name for record in service.weights(plain)] == ["syncnet"]
    asked = [record.name for record in service.weights(plain.with_metrics(["lpips"]))]
    assert asked == ["syncnet", "alexnet", "lpips_alex"]
    script = f"""
import sys
from pytest_lipsync.scoring.scorer import Scorer
from pytest_lipsync.settings import Settings
score = Scorer(Settings(protocol="cropped", fidelity="clean", device="cpu", syncnet_weights={str(syncnet_weights)!r},
                        offline=True)).score({str(make_clip("gate_good_mg.mp4", SPEC))!r})
assert score.ok and set(score.metrics) == {{"lse_d", "lse_c", "offset"}}, score
new = ["pytest_lipsync.quality." + name for name in ("lpips", "cpbd", "fid", "measures", "networks.inception",
       "networks.alexnet", "networks.vgg")]
print(sorted(name for name in new if name in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_lpips_weights_name_the_file_its_hash_and_url(
    quality_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, syncnet_weights: Path, make_clip: MakeClip
) -> None:
    from pytest_lipsync.scoring.scorer import Scorer

    monkeypatch.delenv(LPIPS_ALEX.env_var)
    settings = Settings(protocol="cropped", device="cpu", syncnet_weights=str(syncnet_weights), offline=True)
    with pytest.raises(WeightsError) as raised:
        Scorer(settings.with_metrics(["lpips"]))
    text = f"{raised.value.message} {raised.value.hint} {raised.value.facts}"
    assert LPIPS_ALEX.filename in text and LPIPS_ALEX.sha256 in text and LPIPS_ALEX.urls[0] in text


def test_every_quality_weights_variable_is_known() -> None:
    from pytest_lipsync.config.resolution import environment_warnings

    assert environment_warnings({spec.env_var: "x" for spec in QUALITY}) == ()
    assert set(OPT_IN) == {"lpips", "cpbd", "fid"}


# --- invariants ----------------------------------------------------------------------------------------------


def test_a_blurred_copy_of_a_video_is_less_sharp(make_clip: MakeClip, tmp_path: Path) -> None:
    import av
    import cv2

    source = make_clip("mg_sharp.mkv", ClipSpec(seconds=0.4, width=128, height=128))
    blurred = tmp_path / "blurred.mkv"
    with av.open(str(blurred), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "bgr0"
        for frame in frames_of(source):
            picture = av.VideoFrame.from_ndarray(cv2.GaussianBlur(frame, (0, 0), 2.0), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    sharp = measure_generated(source, {"cpbd": cpbd_measure}).measured["cpbd"]
    soft = measure_generated(blurred, {"cpbd": cpbd_measure}).measured["cpbd"]
    assert len(soft.values) == len(sharp.values) == 10
    assert all(b < a for a, b in zip(sharp.values, soft.values)) and soft.mean < sharp.mean


def test_identical_videos_score_lpips_exactly_zero(
    trees: tuple[Path, Path], quality_env: dict[str, Path], syncnet_weights: Path
) -> None:
    """(FID of identical frames is 0 to rounding: tests/test_quality_fid.py, without the 2048x2048 square root of
    a run here.)"""
    from pytest_lipsync.scoring.scorer import Scorer

    out, gt = trees
    settings = Settings(protocol="cropped", fidelity="clean", device="cpu", syncnet_weights=str(syncnet_weights))
    score = Scorer(settings.with_metrics(["lpips"])).score(out / "same.mkv", gt / "same.mkv")
    assert score.metrics["lpips"] == 0.0 and score.quality is not None
    assert score.quality["lpips"]["per_frame"] == [0.0] * 10


# --- through the front-ends ------------------------------------------------------------------------------------


def score_command(out: Path, gt: Path, syncnet_weights: Path, *extra: str) -> int:
    common = ["--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "-q", "--offline"]
    metrics = ["--metrics", "lpips", "--metrics", "cpbd", "--metrics", "fid", "--fid-stride", str(STRIDE)]
    flags = [*common, *metrics, "--syncnet-weights", str(syncnet_weights)]
    return main(["score", str(out), "--reference", str(gt), *flags, *extra])


def test_a_merged_report_has_no_dataset_fid_to_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_lipsync.results import Report, RunRecord, VideoScore

    run = RunRecord("0", {"protocol": "cropped"}, (), "cpu")
    compared = VideoScore("a.mp4", {"lse_d": 7.0, "psnr": 30.0}, quality={"reference": "gt/a.mp4", "match": "path"})
    report = tmp_path / "merged.json"
    report.write_text(json.dumps(Report(run, (compared,), collected=("a.mp4",)).to_dict()))
    assert main(["gate", str(report), "--fid-max", "20"]) == 2
    error = capsys.readouterr().err
    assert "--fid-max judges the FID of the whole dataset, and the report holds none" in error
    assert "lipsync score --metrics fid --json" in error


def test_a_sharded_pytest_run_refuses_fid(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(variable)
    (pytester.path / "videos").mkdir()
    (pytester.path / "videos" / "a.mp4").write_bytes(b"not scored")
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "videos"\nreference = "videos"\n[tool.lipsync.thresholds]\n'
                               "fid_max = 30.0\n")  # fmt: skip
    result = pytester.runpytest_inprocess("--lipsync-shard", "1/2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*FID is computed over the whole dataset*shard 1/2*pytest -k fid*"])


def test_metrics_that_need_ground_truth_without_any_are_usage_errors_before_any_weights(
    pytester: pytest.Pytester,
    make_clip: MakeClip,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """LPIPS and FID asked for where no video has ground truth would compute nothing and say nothing: both
    front-ends refuse it by name, before any weights are looked for (offline, with none in the cache)."""
    for variable in [name for name in os.environ if name.startswith("LIPSYNC_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("LIPSYNC_HOME", str(pytester.path / "no-weights"))
    (pytester.path / "videos").mkdir()
    shutil.copy(make_clip("gate_alone.mp4", ClipSpec(1.0)), pytester.path / "videos" / "a.mp4")
    monkeypatch.chdir(pytester.path)

    assert main(["score", "videos", "--metrics", "lpips", "--metrics", "fid", "--offline", "-q"]) == 2
    err = capsys.readouterr().err
    assert "LPIPS and FID compare generated frames with ground truth, and no video has any" in err
    assert "Give --reference DIR" in err and "leave lpips and fid out of metrics" in err
    main(["score", "videos", "--metrics", "cpbd", "--offline", "-q"])  # CPBD needs none (here it fails on weights)
    assert "ground truth" not in capsys.readouterr().err

    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "videos"\nmetrics = ["lpips"]\n')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*LPIPS compares generated frames with ground truth, and no video has any*"])


PYPROJECT = """
[tool.lipsync]
videos = "out"
reference = "gt"
protocol = "cropped"
fidelity = "clean"
device = "cpu"
offline = true
syncnet_weights = "{weights}"
metrics = ["cpbd"]
fid_stride = {stride}

[tool.lipsync.thresholds]
lpips_max = {lpips_max}
fid_max = {fid_max}
cpbd_min = 0.0
"""


@pytest.mark.slow
def test_score_gate_and_pytest_report_the_literal_definitions(
    pytester: pytest.Pytester,
    trees: tuple[Path, Path],
    quality_env: dict[str, Path],
    syncnet_weights: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One test for the three front-ends: each FID costs a square root of a 2048x2048 matrix (seconds to a minute
    on a shared CPU), so the expected value is computed once and the pytest run that gates the videos leaves
    the FID item out; the run that computes it runs it on an xdist worker."""
    out, gt = trees
    pairs = [(out / "a.avi", gt / "a.mkv"), (out / "b.mkv", gt / "b.mkv"), (out / "same.mkv", gt / "same.mkv")]
    lpips = {video.name: expected_lpips(video, truth, quality_env) for video, truth in pairs}
    cpbd = {video.name: expected_cpbd(video) for video, _ in pairs}
    fid = expected_fid(pairs, quality_env)  # imports the networks here first: pytester's runs drop their modules

    # lipsync score
    results = pytester.path / "scores.json"
    assert score_command(out, gt, syncnet_weights, "--json", str(results)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "video", "LSE-D", "LSE-C", "offset", "PSNR", "SSIM", "LPIPS", "CPBD", "frames", "seconds", "result", "detail",
    ]  # fmt: skip
    assert any(line.startswith("FID (dataset): ") and "over 3 videos" in line for line in table)
    document = json.loads(results.read_text())
    videos = {Path(video["path"]).name: video for video in document["videos"]}
    for name in lpips:
        assert relative(videos[name]["metrics"]["lpips"], lpips[name]) < 1e-5
        assert relative(videos[name]["metrics"]["cpbd"], cpbd[name]) < 1e-5
        series = videos[name]["quality"]["lpips"]
        assert series["worst"]["value"] == max(series["per_frame"])  # lower is better: the worst is the highest
    assert videos["same.mkv"]["metrics"]["lpips"] == 0.0
    section = document["dataset"]["fid"]
    assert (section["videos"], section["references"], section["generated_frames"], section["reference_frames"]) == (
        3,
        3,
        12,
        12,
    )
    assert relative(section["value"], fid) < 1e-4
    assert section["sampling"] == {"stride": STRIDE, "max_frames": None} and section["weights"]["custom"] is True
    assert document["settings"]["metrics"] == ["lpips", "cpbd"]
    assert {w["name"] for w in document["weights"]} == {"syncnet", "alexnet", "lpips_alex"}

    # lipsync gate judges the report's dataset FID, without a model
    assert main(["gate", str(results), "--fid-max", str(fid / 2), "--lpips-max", "1"]) == 1
    printed = capsys.readouterr().out
    assert "lipsync::fid: 1 of 1 check failed" in printed and "fid_max" in printed
    assert main(["gate", str(results), "--fid-max", str(fid * 2), "--cpbd-min", "0"]) == 0
    capsys.readouterr()

    # the pytest gate: -k fid runs the run-level item alone, here on an xdist worker, whose number reaches the
    # controller's JSON
    shutil.copytree(out, pytester.path / "out")
    shutil.copytree(gt, pytester.path / "gt")
    project = {
        "weights": syncnet_weights,
        "stride": STRIDE,
        "fid_max": fid / 2,
        "lpips_max": (lpips["a.avi"] + lpips["b.mkv"]) / 2,
    }
    pytester.makepyprojecttoml(PYPROJECT.format(**project))
    report = pytester.path / "results.json"
    only_fid = pytester.runpytest_subprocess(
        "-k", "fid", "-n", "2", "-p", "no:cacheprovider", f"--lipsync-json={report}"
    )
    only_fid.assert_outcomes(failed=1)  # xdist deselects on the workers, and counts no deselected items
    only_fid.stdout.fnmatch_lines(
        ["*lipsync::fid: 1 of 1 check failed*", "*fid *fid_max*FAIL*", "over the whole dataset: FID *"]
    )
    assert relative(json.loads(report.read_text())["dataset"]["fid"]["value"], fid) < 1e-4

    # a and same pass LPIPS (a close copy, an identical one), b's is above the limit; CPBD passes everywhere
    assert lpips["same.mkv"] == 0.0 < lpips["a.avi"] < lpips["b.mkv"]
    summary, junit = pytester.path / "summary.md", pytester.path / "junit.xml"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gate = pytester.runpytest_inprocess(
        "-k", "not fid", "-p", "no:cacheprovider", f"--lipsync-json={report}", f"--junitxml={junit}"
    )
    gate.assert_outcomes(passed=5, failed=1, deselected=1)
    gate.stdout.fnmatch_lines(["*lpips *lpips_max*FAIL*", "*FAILED out/b.mkv::quality*"])
    gate.stdout.fnmatch_lines(["video *LSE-D *LSE-C *offset *PSNR *SSIM *LPIPS *CPBD *frames*"])
    assert "| video | LSE-D | LSE-C | offset | PSNR | SSIM | LPIPS | CPBD | verdict |" in summary.read_text()
    junit_text = junit.read_text()
    assert 'name="lipsync_lpips"' in junit_text and 'name="lipsync_cpbd"' in junit_text
    measured = {Path(video["path"]).name: video["metrics"] for video in json.loads(report.read_text())["videos"]}
    for name in lpips:
        assert relative(measured[name]["lpips"], lpips[name]) < 1e-5
        assert relative(measured[name]["cpbd"], cpbd[name]) < 1e-5

    # a regression rule on LPIPS: a baseline whose LPIPS of a.avi was half of today's
    baseline = pytester.path / "baseline.json"
    flags = ["-p", "no:cacheprovider", "-k", "a.avi and not fid", f"--lipsync-baseline={baseline}"]
    assert pytester.runpytest_inprocess(*flags, "--lipsync-update-baseline").ret == 0
    written = json.loads(baseline.read_text())
    entry = next(video for video in written["videos"] if video["path"] == "out/a.avi")
    entry["metrics"]["lpips"] /= 2
    baseline.write_text(json.dumps(written))
    with (pytester.path / "pyproject.toml").open("a") as toml:
        toml.write('\n[tool.lipsync.regression]\nlpips = "+10%"\n')
    regressed = pytester.runpytest_inprocess(*flags)
    regressed.assert_outcomes(passed=1, failed=1, deselected=5)
    regressed.stdout.fnmatch_lines(["*lpips *regression lpips +10%*FAIL*", "*FAILED out/a.avi::quality*"])


def test_in_the_face_region_lpips_and_cpbd_run_on_the_track_crops(standins: dict[str, Path]) -> None:
    """``region = "face"``: both measures see the crops PSNR/SSIM see (the literal crops of the generated
    video's track), one value per (track, frame)."""
    from pytest_lipsync.faces.tracking import build_tracks
    from pytest_lipsync.quality.accumulate import compare_streams
    from pytest_lipsync.quality.face import FaceCropAccumulator, FaceRegions
    from pytest_lipsync.quality.measures import lpips_measure
    from pytest_lipsync.quality.settings import QualitySettings
    from tests.test_faces_tracking import detections_of, literal_crop, moving_face

    rng = np.random.default_rng(8)
    gen = rng.integers(0, 256, (30, 120, 160, 3), dtype=np.uint8)
    # Ground truth of the first 6 frames only: the track's first 6 crops are compared, the rest are not.
    gt = np.clip(gen[:6].astype(np.int16) + rng.integers(-30, 31, gen[:6].shape), 0, 255).astype(np.uint8)
    (track,) = build_tracks(
        detections_of(30, moving_face(range(30), 40.0, seed=1, x0=40.0)), [(0, 30)], min_track=5, min_face_size=10
    ).tracks
    trunk, heads = (resolve_weights(spec, standins[spec.env_var]) for spec in (ALEXNET, LPIPS_ALEX))
    measures = {"lpips": lpips_measure("alex", trunk, heads, "cpu"), "cpbd": cpbd_measure}
    settings = QualitySettings(region="face", max_length_mismatch=24)
    accumulator = FaceCropAccumulator(FaceRegions((track,)), settings, measures=measures)
    result = compare_streams(iter([gen[:4], gen[4:]]), iter([gt[:3], gt[3:]]), settings, accumulator=accumulator)

    geometry = list(zip(range(6), track.s, track.cx, track.cy))
    gt_crops = [literal_crop(gt[f], s, x, y) for f, s, x, y in geometry]
    gen_crops = [literal_crop(gen[f], s, x, y) for f, s, x, y in geometry]
    trunk_state, heads_state = (torch.load(w.path, weights_only=True) for w in (trunk, heads))
    lpips = [literal_lpips(a, b, trunk_state, heads_state, ALEXNET_LAYERS) for a, b in zip(gt_crops, gen_crops)]
    cpbd = [literal_cpbd(pillow_gray(crop)) for crop in gen_crops]
    assert len(result.measured["lpips"].values) == len(result.measured["cpbd"].values) == 6
    np.testing.assert_allclose(result.measured["lpips"].values, lpips, rtol=1e-5)
    np.testing.assert_allclose(result.measured["cpbd"].values, cpbd, rtol=1e-5)
    document = result.to_json()
    worst = document["lpips"]["worst"]  # the highest: LPIPS is better lower
    assert (worst["frame"], worst["track"]) == (int(np.argmax(lpips)), 0)
    assert worst["value"] == pytest.approx(max(lpips), rel=1e-5)


def test_the_html_report_plots_lpips_over_time_with_its_worst_frame(tmp_path: Path) -> None:
    from pytest_lipsync.reports.html import write_report
    from pytest_lipsync.results import Report, RunRecord, VideoScore
    from tests.test_reports_html import Page

    lpips = [0.1 + 0.01 * (i % 3) for i in range(20)]
    lpips[7] = 0.4  # the worst: the highest
    quality = {
        "psnr": {"mean": 30.0, "worst": {"frame": 2, "value": 25.0}, "per_frame": [30.0] * 2 + [25.0] + [30.0] * 17},
        "lpips": {"mean": sum(lpips) / 20, "worst": {"frame": 7, "value": 0.4}, "per_frame": lpips},
        "cpbd": {"mean": 0.5, "worst": {"frame": 0, "value": 0.5}, "per_frame": [0.5] * 20},
        "error": None,
    }
    video = VideoScore("a.mp4", {"lse_d": 7.0, "psnr": 30.0, "lpips": sum(lpips) / 20, "cpbd": 0.5}, quality=quality)
    page = Page(write_report(Report(RunRecord("0", {}, (), "cpu"), (video,)), tmp_path).read_text(encoding="utf-8"))
    assert page.rows[0] == ["video", "LSE-D", "LSE-C", "offset", "PSNR", "SSIM", "LPIPS", "CPBD", "status"]
    assert page.rows[1][6:8] == [f"{sum(lpips) / 20:.4f}", "0.5000"]
    text = " ".join(page.text)
    assert "Per-frame PSNR, LPIPS and CPBD, worst frame marked" in text
