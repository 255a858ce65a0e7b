"""The pytest plugin end to end: pytester projects gating generated clips with stand-in weights.

The clips and the stand-in weights are made once per session. Inner runs share one result cache directory
(the cache key is the content, settings and weights, so sharing is safe) so that each clip is scored by
SyncNet once for the whole file; the tests about the cache itself use their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip, PytesterProject, Scorers

pytest_plugins = ["pytester"]

# With the stand-in weights, the in-sync clip scores LSE-D ~4.8, the clip with audio 3 frames late ~6.2.
BETWEEN = 5.5


@pytest.fixture(scope="session")
def clips(make_clip: MakeClip, scorers: Scorers) -> dict[str, Path]:
    small = {"seconds": 1.0, "width": 48, "height": 48}
    good = make_clip("gate_good.mp4", ClipSpec(seed=1, **small))  # type: ignore[arg-type]  # int and float sizes, joined to float
    # pytester's in-process runs drop the modules they import; numpy and torch cannot be imported twice,
    # so the outer process imports everything scoring needs first, by scoring once.
    assert scorers().score(good).ok
    late = make_clip("gate_late.mp4", ClipSpec(seed=2, audio_delay_frames=3, **small))  # type: ignore[arg-type]  # int and float sizes, joined to float
    broken = good.with_name("gate_broken.mp4")
    if not broken.exists():
        broken.write_bytes(good.read_bytes()[:1500])
    return {"good.mp4": good, "hard/late.mp4": late, "broken.mp4": broken}


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lipsync-cache")


@pytest.fixture
def project(
    pytester: pytest.Pytester, clips: dict[str, Path], syncnet_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> PytesterProject:
    """A pytester project with the clips under ``videos/``; ``make(extra toml, with_broken)`` writes pyproject."""
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)

    def make(extra: str = "", *, broken: bool = True) -> Path:
        for name, source in clips.items():
            if broken or name != "broken.mp4":
                target = pytester.path / "videos" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        pytester.makepyprojecttoml(
            f"""
            [tool.lipsync]
            videos = "videos"
            protocol = "cropped"
            fidelity = "clean"
            device = "cpu"
            offline = true
            syncnet_weights = "{syncnet_weights}"
            """
            + extra
        )
        return pytester.path

    return make


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-v", "-o", f"cache_dir={cache}", *args)


def test_gate_items_pass_fail_and_unscorable(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    project(f"[tool.lipsync.thresholds]\nlse_d_max = {BETWEEN}\n")
    result = run(pytester, shared_cache)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*collected 3 items",
            "videos/broken.mp4::lipsync FAILED*",
            "videos/good.mp4::lipsync PASSED*",
            "videos/hard/late.mp4::lipsync FAILED*",
        ]
    )
    output = result.stdout.str()
    # The failing video: a compact table, the rule that fired, no Python traceback.
    result.stdout.fnmatch_lines(
        [
            "videos/hard/late.mp4: 1 of 1 check failed",
            "*metric*value*limit*baseline*margin*rule*",
            f"*lse_d*{BETWEEN:.3f}*-*lse_d_max*FAIL",
        ]
    )
    assert "Traceback" not in output and "def runtest" not in output
    result.stdout.fnmatch_lines(["videos/broken.mp4: unreadable: *broken.mp4: cannot be opened as a video*"])
    # The summary: every video, dataset means.
    result.stdout.fnmatch_lines(["*= lipsync =*", "video*LSE-D*LSE-C*offset*", "mean over 2 scored videos: LSE-D *"])
    # Stand-in weights are custom: the numbers are labelled as not comparable with published ones.
    result.stdout.fnmatch_lines(["note: scored with custom weights (syncnet *): these numbers are not comparable*"])


def test_allowed_error_kind_is_xfail_and_overrides_apply_by_glob(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    project(
        f"""
        allow = ["unreadable"]
        [tool.lipsync.thresholds]
        lse_d_max = {BETWEEN}
        [[tool.lipsync.overrides]]
        glob = "hard/*.mp4"
        lse_d_max = 9.0
        """
    )
    result = run(pytester, shared_cache, "-rx")
    result.assert_outcomes(passed=2, xfailed=1)
    result.stdout.fnmatch_lines(
        ["XFAIL videos/broken.mp4::lipsync - unreadable: *(allowed by allow = [[]'unreadable'[]])"]
    )


def test_an_allowed_video_formats_no_traceback(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """pytest formats a failure's traceback for every xfail it raises and never shows it: with thousands of
    allowed videos that was most of the run. The report carries the reason instead."""
    project('allow = ["unreadable"]\n')
    recorder = pytester.inline_run("-o", f"cache_dir={shared_cache}", "-k", "broken")
    (report,) = [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert report.skipped and report.wasxfail.startswith("unreadable: ")
    assert report.longrepr == report.wasxfail


def test_override_rule_is_named_in_the_failure(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    project('[[tool.lipsync.overrides]]\nglob = "hard/*.mp4"\nlse_d_max = 1.0\n', broken=False)
    result = run(pytester, shared_cache)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*lse_d*1.000*lse_d_max (override 'hard/*.mp4')*FAIL"])


def test_items_select_with_k_and_m(project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path) -> None:
    project()
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    run(pytester, shared_cache, "-k", "good").assert_outcomes(passed=1)
    globbed = pytester.runpytest_inprocess(
        "--co", "-q", "--lipsync-videos=videos/**/l*.mp4", "--lipsync-videos=videos/good.mp4"
    )
    globbed.stdout.fnmatch_lines(["videos/good.mp4::lipsync", "videos/hard/late.mp4::lipsync"])
    assert "broken" not in globbed.stdout.str()
    run(pytester, shared_cache, "-m", "not lipsync").assert_outcomes(passed=1)
    result = pytester.runpytest_inprocess("-m", "lipsync", "--co", "-q")
    result.stdout.fnmatch_lines(
        ["videos/broken.mp4::lipsync", "videos/good.mp4::lipsync", "videos/hard/late.mp4::lipsync"]
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "lse_d_maxx = 3\n",
            "[[]tool.lipsync[]] lse_d_maxx in */pyproject.toml is not a pytest-lipsync setting "
            "(did you mean lse_d_max?*",
        ),
        (
            "[tool.lipsync.thresholds]\nlse_c_min = 'high'\n",
            "[[]tool.lipsync[]] thresholds.lse_c_min in */pyproject.toml must be a number, not 'high'",
        ),
        (
            "[tool.lipsync.regression]\nlse_c = '+0.3'\n",
            "*regression.lse_c in */pyproject.toml '+0.3' points the wrong way*\"-0.3\"*",
        ),
        (
            "[tool.lipsync.regression]\nlse_d = 'a bit'\n",
            "*regression.lse_d in */pyproject.toml 'a bit' is not a tolerance*",
        ),
        ("batch_size = 'big'\n", "*batch_size in */pyproject.toml must be a whole number, not 'big'"),
        ("allow = ['no_face']\n", "*allow in */pyproject.toml names 'no_face', which is not an error kind*"),
        ("[[tool.lipsync.overrides]]\nlse_d_max = 9.0\n", "*overrides[[]0[]].glob in */pyproject.toml is required*"),
        (
            "[tool.lipsync.thresholds]\npsnr_min = 30\n",
            (
                "[[]tool.lipsync[]] thresholds.psnr_min in */pyproject.toml would judge PSNR/SSIM against ground "
                'truth, but none is configured. Set reference = "DIR" in [[]tool.lipsync[]] '
                "(--lipsync-reference DIR) or name each video*"
            ),
        ),
        (
            "[tool.lipsync.thresholds]\nlse_d_max = nan\n",
            "*thresholds.lse_d_max in */pyproject.toml is invalid: setting 'lse_d_max' is nan. Use a finite number",
        ),
    ],
)
def test_configuration_errors_name_the_key_and_the_file(
    project: PytesterProject, pytester: pytest.Pytester, extra: str, expected: str
) -> None:
    project(extra)
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*pytest-lipsync: {expected}"])


def test_flag_and_environment_errors_name_their_source(
    project: PytesterProject, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project()
    result = pytester.runpytest_inprocess("--lipsync-lse-d-max=low")
    result.stderr.fnmatch_lines(["*--lipsync-lse-d-max must be a number, not 'low'"])
    monkeypatch.setenv("LIPSYNC_DEVICE", "gpu")
    result = pytester.runpytest_inprocess()
    result.stderr.fnmatch_lines(["*LIPSYNC_DEVICE is invalid: setting 'device' is 'gpu'*"])


def test_misspelt_variables_and_globs_matching_nothing_are_warnings(
    project: PytesterProject, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project('[[tool.lipsync.overrides]]\nglob = "hrad/*.mp4"\nlse_d_max = 9.0\n', broken=False)
    monkeypatch.setenv("LIPSYNC_LSE_D_MAXX", "3")
    monkeypatch.setenv("LIPSYNC_FUZZ_SEED", "7")
    result = pytester.runpytest_inprocess("--co", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*LipsyncConfigWarning: LIPSYNC_LSE_D_MAXX is not a pytest-lipsync setting and is ignored "
            "(did you mean LIPSYNC_LSE_D_MAX?)",
            "*LipsyncConfigWarning: [[]tool.lipsync[]] overrides[[]0[]].glob in */pyproject.toml = 'hrad/[*].mp4' "
            "matches none of the 2 videos, so its rules apply to none*",
        ]
    )
    assert "LIPSYNC_FUZZ_SEED" not in result.stdout.str()
    strict = pytester.runpytest_inprocess(
        "--co", "-q", "-p", "no:cacheprovider", "-W", "error::pytest_lipsync.plugin.LipsyncConfigWarning"
    )
    assert strict.ret != pytest.ExitCode.OK


CONFIG_TEST = """
import pytest

def test_config(lipsync_scorer):
    config = lipsync_scorer.config
    print("RESOLVED", config.gate.thresholds.lse_d_max, config.settings.batch_size, config.settings.fidelity)

@pytest.mark.lipsync(lse_d_max=1.5, fidelity="reference")
def test_marker(lipsync_video):
    config = lipsync_video.config
    print("MARKER", lipsync_video.key, config.gate.thresholds.lse_d_max, config.settings.fidelity)
"""


def test_precedence_pyproject_environment_flags_marker(
    project: PytesterProject, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project("batch_size = 4\n[tool.lipsync.thresholds]\nlse_d_max = 7.0\n", broken=False)
    pytester.makepyfile(test_config=CONFIG_TEST)
    args = ("-s", "-p", "no:cacheprovider", "test_config.py", "-k", "test_config or test_marker and good")
    run_default = pytester.runpytest_inprocess(*args)
    run_default.stdout.fnmatch_lines(["*RESOLVED 7.0 4 clean*", "*MARKER videos/good.mp4 1.5 reference*"])
    monkeypatch.setenv("LIPSYNC_LSE_D_MAX", "6")
    monkeypatch.setenv("LIPSYNC_BATCH_SIZE", "8")
    pytester.runpytest_inprocess(*args).stdout.fnmatch_lines(["*RESOLVED 6.0 8 clean*"])
    flagged = pytester.runpytest_inprocess(*args, "--lipsync-lse-d-max=5", "--lipsync-fidelity=reference")
    flagged.stdout.fnmatch_lines(["*RESOLVED 5.0 8 reference*", "*MARKER videos/good.mp4 1.5 reference*"])


FLAGS_TEST = """
def test_flags(lipsync_scorer):
    config = lipsync_scorer.config
    s, o = config.settings, config.options
    print("SETTINGS", s.protocol, s.fidelity, s.device, s.offline, s.detector, s.s3fd_weights, s.syncnet_weights,
          s.batch_size)
    print("QUALITY", s.ssim_window, s.color, s.resize_reference, s.max_length_mismatch)
    print("OPTIONS", [p.rsplit("/", 1)[-1] for p in o.videos], s.reference.rsplit("/", 1)[-1],
          o.json.rsplit("/", 1)[-1], o.baseline.rsplit("/", 1)[-1], o.update_baseline, o.no_cache)
    print("GATE", config.gate.thresholds, config.gate.allow)
"""


def test_every_flag_reaches_its_setting(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flags=FLAGS_TEST)
    for folder in ("gt", "a", "b"):
        pytester.mkdir(folder)
    flags = [
        "--lipsync-videos=a",
        "--lipsync-videos=b",
        "--lipsync-reference=gt",
        "--lipsync-json=r.json",
        "--lipsync-baseline=base.json",
        "--lipsync-update-baseline",
        "--lipsync-no-cache",
        "--lipsync-offline",
        "--lipsync-protocol=cropped",
        "--lipsync-fidelity=clean",
        "--lipsync-device=cpu",
        "--lipsync-syncnet-weights=s.model",
        "--lipsync-s3fd-weights=f.pth",
        "--lipsync-detector=pkg.mod:make",
        "--lipsync-batch-size=3",
        "--lipsync-lse-c-min=2.5",
        "--lipsync-ssim-min=0.5",
        "--lipsync-allow=no_face_track",
        "--lipsync-ssim-window=gaussian11",
        "--lipsync-color=y",
        "--lipsync-resize-reference",
        "--lipsync-max-length-mismatch=4",
    ]
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider", "-k", "test_flags", *flags)
    result.stdout.fnmatch_lines(
        [
            f"*SETTINGS cropped clean cpu True pkg.mod:make {pytester.path / 'f.pth'} {pytester.path / 's.model'} 3",
            "QUALITY gaussian11 y True 4",
            "OPTIONS ['a', 'b'] gt r.json base.json True True",
            "GATE Thresholds(lse_d_max=None, lse_c_min=2.5, psnr_min=None, ssim_min=0.5, lpips_max=None, "
            "cpbd_min=None, fid_max=None) ('no_face_track',)",
        ]
    )


def test_baseline_create_compare_update_and_mismatch(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    project('baseline = "lipsync-baseline.json"\n[tool.lipsync.regression]\nlse_d = "+0.2"\nlse_c = "-3%"\n')
    baseline = pytester.path / "lipsync-baseline.json"
    missing = run(pytester, shared_cache, "-k", "good")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(
        ["*baseline file */lipsync-baseline.json does not exist: run with --lipsync-update-baseline to create it"]
    )

    created = run(pytester, shared_cache, "--lipsync-update-baseline")
    created.assert_outcomes(passed=2, failed=1)  # the broken video still fails; it has no entry
    created.stdout.fnmatch_lines(
        ["lipsync: baseline */lipsync-baseline.json written: 2 added, 0 changed, 0 removed, 0 unchanged"]
    )
    document = json.loads(baseline.read_text())
    assert [v["path"] for v in document["videos"]] == ["videos/good.mp4", "videos/hard/late.mp4"]
    assert (
        document["settings"] == {"protocol": "cropped", "fidelity": "clean"} and "tracks" not in document["videos"][0]
    )

    run(pytester, shared_cache, "-k", "good or late").assert_outcomes(passed=2)

    good = document["videos"][0]["metrics"]
    good["lse_d"] -= 1.0  # the accepted number was better: now the video regressed by 1.0 > 0.2
    document["videos"].pop(1)
    baseline.write_text(json.dumps(document))
    regressed = run(pytester, shared_cache, "-k", "good or late")
    regressed.assert_outcomes(failed=2)
    regressed.stdout.fnmatch_lines(
        [f"*lse_d*{good['lse_d'] + 0.2:.3f}*{good['lse_d']:.3f}*-0.8*regression lse_d +0.2*FAIL"]
    )
    regressed.stdout.fnmatch_lines(
        [
            "*videos/hard/late.mp4 is not in the baseline */lipsync-baseline.json: "
            "run with --lipsync-update-baseline to add it"
        ]
    )

    updated = run(pytester, shared_cache, "--lipsync-update-baseline", "-k", "good or late")
    updated.stdout.fnmatch_lines(
        [
            "*written: 1 added, 1 changed, 0 removed, 0 unchanged",
            "  added: videos/hard/late.mp4",
            "  changed: videos/good.mp4",
        ]
    )

    document = json.loads(baseline.read_text())
    document["settings"]["fidelity"] = "reference"
    document["weights"][0]["sha256"] = "0" * 64
    baseline.write_text(json.dumps(document))
    mismatch = run(pytester, shared_cache)
    assert mismatch.ret == pytest.ExitCode.USAGE_ERROR
    mismatch.stderr.fnmatch_lines(
        [
            "*lipsync-baseline.json: was made with other scoring settings or weights than this run*"
            "fidelity = 'reference' in the baseline, 'clean' now; syncnet weights SHA-256 0000*"
        ]
    )


def test_json_report_junit_properties_and_github_summary(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(f"[tool.lipsync.thresholds]\nlse_d_max = {BETWEEN}\n")
    summary = pytester.path / "step-summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run(pytester, shared_cache, "--lipsync-json=out/results.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=2)

    document = json.loads((pytester.path / "out" / "results.json").read_text())
    assert document["schema_version"] == 1 and document["settings"] == {"protocol": "cropped", "fidelity": "clean"}
    videos = {v["path"]: v for v in document["videos"]}
    assert sorted(videos) == ["videos/broken.mp4", "videos/good.mp4", "videos/hard/late.mp4"]
    assert videos["videos/broken.mp4"]["error"]["kind"] == "unreadable"
    assert set(videos["videos/good.mp4"]["metrics"]) == {"lse_d", "lse_c", "offset"}

    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="lipsync_video" value="videos/good.mp4"' in junit and 'name="lipsync_lse_d"' in junit

    text = summary.read_text()
    assert text.startswith("# earlier step\n## pytest-lipsync: 3 videos, 2 failing checks")
    assert (
        "| <code>videos&#47;good&#46;mp4</code> |" in text
        and "| passed |" in text
        and "| unreadable |" in text
        and "**Mean:** LSE-D" in text
    )
    result.stdout.fnmatch_lines(
        [
            "::error file=videos/broken.mp4,title=lipsync gate::unreadable: *",
            "::error file=videos/hard/late.mp4,title=lipsync gate::lse_d * vs limit 5.500 (lse_d_max)",
        ]
    )


def test_cache_replays_scores_without_a_model_and_still_judges(
    project: PytesterProject, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    project("[tool.lipsync.thresholds]\nlse_d_max = 1.0\n", broken=False)
    cache = tmp_path / "own-cache"
    first = run(pytester, cache, "-k", "good")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["1 scored, 0 replayed from the cache"])
    second = run(pytester, cache, "-k", "good")
    second.assert_outcomes(failed=1)  # replayed numbers still meet the verdicts
    second.stdout.fnmatch_lines(["0 scored, 1 replayed from the cache (no model loaded)"])
    second.stdout.fnmatch_lines(["*lse_d*1.000*lse_d_max*FAIL"])

    (entry,) = (cache / "v" / "lipsync" / "scores").iterdir()
    edited = json.loads(entry.read_text())
    edited["score"]["metrics"]["lse_d"] = 0.5  # an edit that would pass the gate: scored again, and it fails
    entry.write_text(json.dumps(edited))
    again = run(pytester, cache, "-k", "good")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["1 scored, 0 replayed from the cache"])

    entry.write_text("{not json")
    run(pytester, cache, "-k", "good").stdout.fnmatch_lines(["1 scored, 0 replayed from the cache"])
    assert json.loads(entry.read_text())["score"]["metrics"]["lse_d"] > 1.0  # rewritten

    run(pytester, cache, "-k", "good", "--lipsync-no-cache").stdout.fnmatch_lines(
        ["1 scored, 0 replayed from the cache"]
    )
    no_provider = run(pytester, cache, "-k", "good", "-p", "no:cacheprovider")
    no_provider.stdout.fnmatch_lines(["*lipsync: * cache=off", "1 scored, 0 replayed from the cache"])


USER_TEST = """
import shutil
from pathlib import Path

from pytest_lipsync import assert_lse_c_above, assert_lse_d_below, assert_no_regression

CLIP = Path({clip!r})

def test_generated(tmp_path, lipsync_scorer):
    video = tmp_path / "generated.mp4"
    shutil.copyfile(CLIP, video)   # stands for the user's generator
    assert lipsync_scorer.score(video).metrics["lse_d"] > 0
    assert_lse_c_above(video, 0.0)
    assert_lse_d_below(video, 1.0)

def test_fixture_video(lipsync_video):
    assert_lse_d_below(lipsync_video, 20.0)
    assert_no_regression(lipsync_video)
"""


def test_helpers_in_a_user_test_point_at_the_users_line(
    project: PytesterProject, pytester: pytest.Pytester, clips: dict[str, Path], shared_cache: Path
) -> None:
    project('baseline = "base.json"\n[tool.lipsync.regression]\nlse_d = "+0.2"\n', broken=False)
    pytester.makepyfile(test_user=USER_TEST.format(clip=str(clips["good.mp4"])))
    run(pytester, shared_cache, "--lipsync-update-baseline", "-m", "lipsync")
    result = run(pytester, shared_cache, "-m", "not lipsync")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_user.py::test_fixture_video[[]videos/good.mp4[]] PASSED*",
            "test_user.py::test_fixture_video[[]videos/hard/late.mp4[]] PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            ">       assert_lse_d_below(video, 1.0)",
            "E       AssertionError: /*/generated.mp4: lse_d = *, expected at most 1.0000 (margin -*)",
            "test_user.py:13: AssertionError",
        ]
    )
    assert "helpers.py" not in result.stdout.str()


@pytest.mark.slow
def test_xdist_workers_ship_results_to_one_report(
    project: PytesterProject, pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(f'baseline = "base.json"\n[tool.lipsync.thresholds]\nlse_d_max = {BETWEEN}\n')
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    args = ("-n", "2", "-o", f"cache_dir={tmp_path / 'cache'}", "--lipsync-json=r.json")
    result = pytester.runpytest_subprocess(*args, "--lipsync-update-baseline")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*= lipsync =*",
            "mean over 2 scored videos: *",
            "3 scored, 0 replayed from the cache",
            "lipsync: baseline */base.json written: 2 added*",
        ]
    )
    assert result.stdout.str().count("= lipsync =") == 1
    videos = json.loads((pytester.path / "r.json").read_text())["videos"]
    assert [v["path"] for v in videos] == ["videos/broken.mp4", "videos/good.mp4", "videos/hard/late.mp4"]
    assert len(json.loads((pytester.path / "base.json").read_text())["videos"]) == 2
    summary = (pytester.path / "summary.md").read_text()
    assert (
        summary.count("## pytest-lipsync: 3 videos, 2 failing checks") == 1
        and summary.count("| <code>videos&#47;") == 3
    )
    assert result.stdout.str().count("::error file=") == 2

    replayed = pytester.runpytest_subprocess(*args)  # compares with the baseline, from the cache
    replayed.assert_outcomes(passed=1, failed=2)
    replayed.stdout.fnmatch_lines(["0 scored, 3 replayed from the cache (no model loaded)"])


# Kills the xdist worker as the out-of-memory killer or a native crash would, when it reaches one video.
CRASH_CONFTEST = """
import os
import signal

import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if item.nodeid == "videos/hard/late.mp4::lipsync":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crashed_xdist_worker_loses_no_video(
    project: PytesterProject,
    pytester: pytest.Pytester,
    shared_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One worker scores the videos in key order and dies on the last: what it scored before stays in the
    report, the video it died on is there as worker_crashed, and the gate fails it."""
    from pytest_lipsync.cli.app import main

    project("[tool.lipsync.thresholds]\nlse_d_max = 9.0\n")
    pytester.makeconftest(CRASH_CONFTEST)
    args = ("-n", "1", "-o", f"cache_dir={shared_cache}", "--lipsync-json=r.json", "--lipsync-html=html")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*worker 'gw0' crashed while running 'videos/hard/late.mp4::lipsync'*"])
    document = json.loads((pytester.path / "r.json").read_text())
    keys = ["videos/broken.mp4", "videos/good.mp4", "videos/hard/late.mp4"]
    assert document["collected"] == keys and [video["path"] for video in document["videos"]] == keys
    broken, good, late = document["videos"]
    assert broken["error"]["kind"] == "unreadable" and good["error"] is None and good["metrics"]["lse_d"] < 9.0
    assert late["error"]["kind"] == "worker_crashed" and late["metrics"] == {}
    assert late["error"]["message"].startswith(
        "videos/hard/late.mp4: the pytest-xdist worker scoring it died (worker 'gw0' crashed while running "
        "'videos/hard/late.mp4::lipsync'), so it has no score."
    )
    result.stdout.fnmatch_lines(["videos/hard/late.mp4 * worker_crashed: *"])  # the summary table
    page = (pytester.path / "html" / "index.html").read_text(encoding="utf-8")
    assert all(key in page for key in keys) and "worker_crashed: videos/hard/late.mp4: the pytest-xdist worker" in page

    monkeypatch.chdir(pytester.path)
    for name in [name for name in os.environ if name.startswith(("LIPSYNC_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    capsys.readouterr()
    assert main(["gate", "r.json"]) == 1
    out = capsys.readouterr().out
    assert "videos/hard/late.mp4: worker_crashed: videos/hard/late.mp4: the pytest-xdist worker scoring it died" in out
    assert out.rstrip().endswith("lipsync gate: failed: 2 of 3 verdicts failed")


QUALITY_TEST = """
from pytest_lipsync import assert_psnr_above, assert_ssim_above

def test_identical_copy():
    assert_psnr_above({clip!r}, {clip!r}, 99.0)

def test_other_clip():
    assert_ssim_above({clip!r}, {other!r}, 0.999)
"""


def test_reference_adds_a_quality_item_per_video(
    project: PytesterProject, pytester: pytest.Pytester, clips: dict[str, Path], shared_cache: Path
) -> None:
    project('reference = "gt"\n[tool.lipsync.thresholds]\nssim_min = 0.99\npsnr_min = 30\n', broken=False)
    (pytester.path / "gt" / "hard").mkdir(parents=True)
    shutil.copyfile(clips["good.mp4"], pytester.path / "gt" / "good.mp4")  # identical: PSNR capped, SSIM 1
    collected = pytester.runpytest_inprocess("--co", "-q")
    collected.stdout.fnmatch_lines(
        [
            "videos/good.mp4::lipsync",
            "videos/good.mp4::quality",
            "videos/hard/late.mp4::lipsync",
            "videos/hard/late.mp4::quality",
        ]
    )
    missing = run(pytester, shared_cache, "-k", "late")
    missing.assert_outcomes(passed=1, failed=1)  # no ground truth fails the quality item only
    missing.stdout.fnmatch_lines(
        [
            "videos/hard/late.mp4: no_reference: */videos/hard/late.mp4: has no ground truth in */gt: "
            'no "hard/late.mp4" there*'
            'or name it in [[]tool.lipsync.pairs[]]: "videos/hard/late.mp4" = "<ground-truth file>"'
        ]
    )

    shutil.copyfile(clips["good.mp4"], pytester.path / "gt" / "hard" / "late.mp4")  # another clip's frames
    result = run(pytester, shared_cache, "--lipsync-json=r.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["videos/hard/late.mp4::quality FAILED*", "*ssim*0.990*ssim_min*FAIL"])
    videos = {v["path"]: v for v in json.loads((pytester.path / "r.json").read_text())["videos"]}
    good, late = videos["videos/good.mp4"], videos["videos/hard/late.mp4"]
    assert good["metrics"]["psnr"] == 100.0 and good["metrics"]["ssim"] == 1.0
    assert good["quality"]["identical_frames"] == good["quality"]["frames"] == 25
    assert late["metrics"]["ssim"] < 0.99 and late["quality"]["reference"].endswith("gt/hard/late.mp4")

    pytester.makepyfile(
        test_quality=QUALITY_TEST.format(clip=str(clips["good.mp4"]), other=str(clips["hard/late.mp4"]))
    )
    helpers = run(pytester, shared_cache, "test_quality.py")
    helpers.assert_outcomes(passed=1, failed=1)
    helpers.stdout.fnmatch_lines(
        ["E       AssertionError: *gate_good.mp4: ssim = *, expected at least 0.9990 (margin -*)"]
    )


def test_plugin_is_inert_and_light_without_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "lipsync" not in result.stdout.str().replace("lipsync-", "")
    code = (
        "import sys, pytest_lipsync.plugin.hooks; "
        "print(sorted(m for m in ('torch', 'cv2', 'av', 'scenedetect', 'matplotlib') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def _summary_section(text: str) -> list[str]:
    """The table and means of a terminal summary: from the table's header to the means line."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("video ") and "LSE-D" in line)
    end = next(n for n, line in enumerate(lines) if line.startswith("mean over"))
    return lines[start : end + 1]


def test_shards_merged_then_gated_give_the_single_runs_verdicts(
    project: PytesterProject,
    pytester: pytest.Pytester,
    shared_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pytest_lipsync.cli.app import main

    project(f'allow = ["unreadable"]\n[tool.lipsync.thresholds]\nlse_d_max = {BETWEEN}\n')
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "whole.md"))
    whole = run(pytester, shared_cache, "--lipsync-json=all.json")
    whole.assert_outcomes(passed=1, failed=1, xfailed=1)
    monkeypatch.delenv("GITHUB_ACTIONS")
    shards = [run(pytester, shared_cache, f"--lipsync-shard={i}/2", f"--lipsync-json=s{i}.json") for i in (1, 2)]
    parts = [json.loads((pytester.path / f"s{i}.json").read_text()) for i in (1, 2)]
    assert [part["shard"] for part in parts] == ["1/2", "2/2"]
    assert all(part["collected"] == ["videos/broken.mp4", "videos/good.mp4", "videos/hard/late.mp4"] for part in parts)
    keys = [[video["path"] for video in part["videos"]] for part in parts]
    assert sorted(keys[0] + keys[1]) == ["videos/broken.mp4", "videos/good.mp4", "videos/hard/late.mp4"]
    assert all(keys) and sum(sum(shard.parseoutcomes().values()) for shard in shards) == 3

    monkeypatch.chdir(pytester.path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "gate.md"))
    capsys.readouterr()
    assert main(["merge", "s2.json", "s1.json", "-o", "merged.json"]) == 0
    merged = json.loads((pytester.path / "merged.json").read_text())
    assert merged == json.loads((pytester.path / "all.json").read_text())
    assert main(["gate", "merged.json"]) == 1
    out = capsys.readouterr().out
    assert _summary_section(out) == _summary_section(whole.stdout.str())
    assert (pytester.path / "gate.md").read_text() == (pytester.path / "whole.md").read_text()
    assert (
        "videos/hard/late.mp4: 1 of 1 check failed" in out and "scores read from merged.json (no model loaded)" in out
    )
    assert out.count("::error file=") == whole.stdout.str().count("::error file=") == 1
    assert out.rstrip().endswith("lipsync gate: failed: 1 of 3 verdicts failed")

    assert main(["gate", "merged.json", "--lse-d-max", "9", "--baseline", "base.json", "--update-baseline"]) == 0
    assert "base.json written: 2 added, 0 changed, 0 removed" in capsys.readouterr().out
    assert [v["path"] for v in json.loads((pytester.path / "base.json").read_text())["videos"]] == [
        "videos/good.mp4",
        "videos/hard/late.mp4",
    ]
    assert main(["gate", "merged.json", "--lse-d-max", "9", "--baseline", "base.json"]) == 0
    assert main(["gate", "s1.json"]) == 2  # one shard is not the run
    assert "s1.json: is shard 1/2 of a split, not a whole run" in capsys.readouterr().err


def test_shard_flag_errors_name_the_flag(project: PytesterProject, pytester: pytest.Pytester) -> None:
    project()
    result = pytester.runpytest_inprocess("--lipsync-shard=3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lipsync-shard is invalid: shard is '3/2'. Write \"i/n\" with 1 <= i <= n*"])


def test_xdist_workers_are_pinned_one_device_each(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faked devices: CUDA_VISIBLE_DEVICES lists two, --lipsync-gpus reorders them; nothing is scored."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,9")
    pytester.makepyprojecttoml('[tool.lipsync]\ndevice = "auto"\n')
    pytester.makeconftest(
        """
        import os

        def pytest_sessionstart(session):
            worker = getattr(session.config, "workerinput", {}).get("workerid", "controller")
            with open(f"env-{worker}.txt", "w") as sink:
                sink.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
        """
    )
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--lipsync-gpus=1,0", "test_nothing.py")
    result.assert_outcomes(passed=1)
    seen = {name: (pytester.path / f"env-{name}.txt").read_text() for name in ("controller", "gw0", "gw1")}
    assert seen == {"controller": "7,9", "gw0": "9", "gw1": "7"}


def test_a_videos_two_items_share_one_xdist_group(
    project: PytesterProject, pytester: pytest.Pytester, clips: dict[str, Path]
) -> None:
    """With ground truth, ``--dist loadgroup`` keeps a video's ``::lipsync`` and ``::quality`` on one worker."""
    project('reference = "gt"\n', broken=False)
    (pytester.path / "gt").mkdir()
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            for item in session.items:
                print("GROUP", item.nodeid, [mark.args for mark in item.iter_markers("xdist_group")])
        """
    )
    result = pytester.runpytest_inprocess("--co", "-q", "-s")
    result.stdout.fnmatch_lines(
        [
            "GROUP videos/good.mp4::lipsync [[]('videos/good.mp4',)[]]",
            "GROUP videos/good.mp4::quality [[]('videos/good.mp4',)[]]",
            "GROUP videos/hard/late.mp4::lipsync [[]('videos/hard/late.mp4',)[]]",
        ]
    )


def test_pairs_name_ground_truth_by_the_project_relative_key_in_whole_and_shard_runs(
    project: PytesterProject, pytester: pytest.Pytester, clips: dict[str, Path], shared_cache: Path
) -> None:
    """``[tool.lipsync.pairs]`` keys are the videos' keys (relative to the rootdir), as in ``lipsync score``; a
    key relative to the videos folder pairs nothing, and the failure names the key that would."""
    project(
        '[tool.lipsync.pairs]\n"videos/good.mp4" = "truth/original.mp4"\n"hard/late.mp4" = "truth/original.mp4"\n',
        broken=False,
    )
    (pytester.path / "truth").mkdir()
    shutil.copyfile(clips["good.mp4"], pytester.path / "truth" / "original.mp4")  # no name in common with the video
    whole = run(pytester, shared_cache, "--lipsync-json=all.json")
    whole.assert_outcomes(passed=3, failed=1)
    whole.stdout.fnmatch_lines(["videos/good.mp4::quality PASSED*", "videos/hard/late.mp4::quality FAILED*"])
    whole.stdout.fnmatch_lines(
        [
            '*has no ground truth: [[]tool.lipsync.pairs[]] has no entry "videos/hard/late.mp4"*'
            '"videos/hard/late.mp4" = "<ground-truth file>"*'
        ]
    )
    good = {v["path"]: v for v in json.loads((pytester.path / "all.json").read_text())["videos"]}["videos/good.mp4"]
    assert (
        good["quality"]["reference"] == str(pytester.path / "truth" / "original.mp4") and good["metrics"]["ssim"] == 1.0
    )

    for index in (1, 2):
        shard = run(pytester, shared_cache, f"--lipsync-shard={index}/2", f"--lipsync-json=s{index}.json")
        keys = [v["path"] for v in json.loads((pytester.path / f"s{index}.json").read_text())["videos"]]
        if keys == ["videos/good.mp4"]:
            shard.assert_outcomes(passed=2)
            shard.stdout.fnmatch_lines(["videos/good.mp4::quality PASSED*"])
        else:
            assert keys == ["videos/hard/late.mp4"]
            shard.assert_outcomes(passed=1, failed=1)


def test_a_configured_gate_that_finds_no_video_fails_naming_the_path(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Other tests pass, the videos folder is empty or the glob matches nothing: the run fails, unless allowed."""
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "notes.txt").write_text("not a video")
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "out"\noffline = true\n')
    empty = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert empty.ret == pytest.ExitCode.TESTS_FAILED
    empty.assert_outcomes(passed=1, failed=1)
    empty.stdout.fnmatch_lines(
        ["*out: holds no video file (searched recursively for .avi, *.mp4*)*allow_no_videos = true*"]
    )

    globbed = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lipsync-videos=out/*.mkv")
    globbed.assert_outcomes(passed=1, failed=1)
    globbed.stdout.fnmatch_lines(["*out/[*].mkv: matches no video file*"])

    allowed = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lipsync-allow-no-videos")
    assert allowed.ret == pytest.ExitCode.OK
    allowed.assert_outcomes(passed=1)


def test_a_missing_videos_folder_is_a_usage_error_before_weights_are_looked_for(
    pytester: pytest.Pytester, clips: dict[str, Path]
) -> None:
    from pytest_lipsync.results import Report, RunRecord

    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    (pytester.path / "base.json").write_text(json.dumps(Report(RunRecord("0", {}, (), "cpu"), ()).to_dict()))
    pytester.makepyprojecttoml(
        '[tool.lipsync]\nvideos = "generated"\nbaseline = "base.json"\noffline = true\n'
        'syncnet_weights = "absent.model"\n'
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    result.stderr.fnmatch_lines([f"*pytest-lipsync: {pytester.path / 'generated'}: no such file or folder*"])
    assert "absent.model" not in result.stderr.str()
    # Running named test files only, the videos are not wanted: a missing folder does not matter.
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "generated"\n')
    assert pytester.runpytest_inprocess("-p", "no:cacheprovider", "test_other.py").ret == pytest.ExitCode.OK


def test_symlinked_folders_are_followed_and_a_dangling_link_is_a_video(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.mp4").write_bytes(b"")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "linked").symlink_to(elsewhere)
    (pytester.path / "out" / "loop").symlink_to(pytester.path / "out")
    (pytester.path / "out" / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "out"\n')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--co", "-q")
    result.stdout.fnmatch_lines(["out/gone.mp4::lipsync", "out/linked/a.mp4::lipsync"])
    assert result.stdout.str().count("::lipsync") == 2


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--lipsync-json=taken"], "*taken: is a directory, not a file to write the results JSON to*"),
        (["--lipsync-json=plain.txt/r.json"], "*r.json: cannot be written: */plain.txt is a file, not a directory*"),
        (["--lipsync-html=plain.txt"], "*plain.txt: is a file, not a directory to write the HTML report into*"),
        (["--lipsync-baseline=taken"], "*taken: is a directory, not a baseline file*"),
        (
            ["--lipsync-baseline=taken", "--lipsync-update-baseline"],
            "*taken: is a directory, not a file to write the baseline to*",
        ),
    ],
)
def test_outputs_that_cannot_be_written_are_usage_errors_before_scoring(
    pytester: pytest.Pytester, clips: dict[str, Path], flags: list[str], words: str
) -> None:
    """(``clips`` imports what scoring needs in this process first: a run that did start scoring would fail, not
    crash.)"""
    (pytester.path / "taken").mkdir()
    (pytester.path / "plain.txt").write_text("")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "a.mp4").write_bytes(b"")
    pytester.makepyprojecttoml('[tool.lipsync]\nvideos = "out"\noffline = true\nsyncnet_weights = "absent.model"\n')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *flags)
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    result.stderr.fnmatch_lines([f"*pytest-lipsync: {words}"])
