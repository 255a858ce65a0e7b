"""The faster options (``precision``, ``detect_every``): settings from every source, what results record,
how baselines and merges treat them, the notice under every table, and the device plumbing of the GPU path
(checked on the CPU by recording what would be asked of a CUDA device)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_lipsync.config.resolution import Layer, env_layer, resolve
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.baseline import Baseline, check_compatible
from pytest_lipsync.models import runtime
from pytest_lipsync.reports.table import fast_options_notice, run_notice
from pytest_lipsync.results import Report, RunRecord, WeightsRecord
from pytest_lipsync.scale.merge import NamedReport, merge_reports
from pytest_lipsync.scoring.scorer import resolve_device
from pytest_lipsync.settings import Precision, Settings
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip, registered_flags

# ---------------------------------------------------------------- settings and their sources


def test_defaults_are_the_protocols_and_record_nothing_extra() -> None:
    settings = Settings()
    assert (settings.precision, settings.detect_every) == ("fp32", 1)
    assert settings.fast_options() == {}
    assert "precision" not in settings.result_settings() and "detect_every" not in settings.result_settings()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precision": "fp64"}, "setting 'precision' is 'fp64'.*Use one of: fp32, bf16, fp16"),
        ({"precision": "BF16"}, "setting 'precision' is 'BF16'"),
        ({"detect_every": 0}, "setting 'detect_every' is 0.*Use an integer > 0"),
        ({"detect_every": 2.0}, "setting 'detect_every' is 2.0.*Use an integer > 0"),
        ({"detect_every": True}, "setting 'detect_every' is True"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**changes)  # type: ignore[arg-type]  # deliberately the wrong type: the check under test


def test_detect_every_beyond_num_failed_det_is_refused_on_the_merged_settings() -> None:
    """Checked once the sources are merged: raising both from different sources must work."""
    with pytest.raises(ConfigError, match=r"'detect_every' is 26, more than num_failed_det = 25.*detect_every <= 25"):
        resolve([Layer("flag", {"detect_every": "26"})], Path("."))
    raised = resolve([Layer("pyproject", {"num_failed_det": 30}, "p"), Layer("env", {"detect_every": "26"})], Path("."))
    assert (raised.settings.detect_every, raised.settings.num_failed_det) == (26, 30)
    Settings(detect_every=26).replace(num_failed_det=26).check_detect_every()
    with pytest.raises(ConfigError, match="more than num_failed_det"):
        Settings(detect_every=26).check_detect_every()


def test_every_source_sets_both_options_and_names_itself_in_errors() -> None:
    table = Layer("pyproject", {"precision": "bf16", "detect_every": 2}, "/p/pyproject.toml")
    assert resolve([table], Path(".")).settings.fast_options() == {"precision": "bf16", "detect_every": 2}
    env = env_layer({"LIPSYNC_PRECISION": "fp16", "LIPSYNC_DETECT_EVERY": "3"})
    assert resolve([table, env], Path(".")).settings.fast_options() == {"precision": "fp16", "detect_every": 3}
    flags = Layer("flag", {"precision": "fp32", "detect_every": "1"})
    assert resolve([table, env, flags], Path(".")).settings.fast_options() == {}
    with pytest.raises(ConfigError, match=r"LIPSYNC_DETECT_EVERY must be a whole number, not 'two'"):
        resolve([env_layer({"LIPSYNC_DETECT_EVERY": "two"})], Path("."))
    with pytest.raises(ConfigError, match=r"--lipsync-precision must be one of 'fp32', 'bf16', 'fp16', not 'half'"):
        resolve([Layer("flag", {"precision": "half"})], Path("."))
    with pytest.raises(ConfigError, match=r"--detect-every is invalid: setting 'detect_every' is 0"):
        resolve([Layer("option", {"detect_every": 0})], Path("."))


def test_lipsync_score_takes_both_options_and_calls_them_out(
    make_clip: MakeClip,
    syncnet_weights: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    native_bf16: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plumbing only: the forward passes are asked for bf16 and run in fp32, so that the test takes the same
    time on any CPU (bf16's numbers are tested in test_sync_model and test_faces_s3fd)."""
    import contextlib

    from pytest_lipsync.cli.app import main

    asked: list[str] = []
    monkeypatch.setattr(
        runtime,
        "autocast",
        lambda precision, device: asked.append(precision) or contextlib.nullcontext(),  # type: ignore[func-returns-value]  # records the call: append's None falls through to the real one
    )
    clip = make_clip("cli_good.mp4", ClipSpec(seconds=1.0, seed=11))
    out = tmp_path / "fast.json"
    args = ["score", str(clip), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "-q"]
    weights = ["--syncnet-weights", str(syncnet_weights), "--json", str(out)]
    assert main([*args, *weights, "--precision", "bf16", "--detect-every", "2"]) == 0
    assert json.loads(out.read_text())["settings"]["precision"] == "bf16"
    assert asked and set(asked) == {"bf16"}
    assert "faster options (precision = 'bf16')" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit, match="2"):
        main([*args, "--precision", "fp64"])
    assert main([*args, *weights, "--detect-every", "0"]) == 2
    assert "--detect-every is invalid: setting 'detect_every' is 0" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert main([*args, *weights, "--precision", "bf16"]) == 2
    assert "setting 'precision' is 'bf16', but this CPU has no bfloat16 instructions" in capsys.readouterr().err


def test_pytest_registers_both_flags() -> None:
    flags = registered_flags()
    assert flags["--lipsync-precision"]["dest"] == "lipsync_precision"
    assert "bf16/fp16 are faster, not the protocol's numbers" in str(flags["--lipsync-precision"]["help"])
    assert flags["--lipsync-detect-every"]["dest"] == "lipsync_detect_every"


# ---------------------------------------------------------------- what results record, and comparisons


def test_results_record_the_options_that_take_effect() -> None:
    fast = Settings(precision="bf16", detect_every=2)
    assert fast.result_settings()["precision"] == "bf16" and fast.result_settings()["detect_every"] == 2
    cropped = fast.replace(protocol="cropped")  # no detector in the cropped protocol: detect_every moves nothing
    assert cropped.result_settings() == {"protocol": "cropped", "fidelity": "reference", "precision": "bf16"}


def _run(**settings: object) -> RunRecord:
    return RunRecord(
        "0", {"protocol": "pipeline", **settings}, (WeightsRecord("syncnet", "w", "a" * 64, False),), "cpu"
    )


def test_a_baseline_made_without_the_options_refuses_a_faster_run(tmp_path: Path) -> None:
    baseline = Baseline(tmp_path / "base.json", _run(), {})
    check_compatible(baseline, _run(precision="fp32"))  # an explicit default is the default
    with pytest.raises(ConfigError, match="precision = 'fp32' in the baseline, 'bf16' now"):
        check_compatible(baseline, _run(precision="bf16"))
    with pytest.raises(ConfigError, match="detect_every = 2 in the baseline, 1 now"):
        check_compatible(Baseline(baseline.path, _run(detect_every=2), {}), _run())


def test_shards_scored_with_different_options_are_not_merged(tmp_path: Path) -> None:
    parts = [
        NamedReport(tmp_path / "1.json", Report(_run(), ())),
        NamedReport(tmp_path / "2.json", Report(_run(detect_every=3), ())),
    ]
    with pytest.raises(ConfigError, match="cannot be merged.*detect_every = 1 in .*1.json, 3 in .*2.json"):
        merge_reports(parts)


def test_every_table_calls_out_the_faster_options() -> None:
    assert fast_options_notice(Settings().result_settings()) is None
    assert run_notice(_run(precision="fp32", detect_every=1)) is None
    note = run_notice(_run(precision="bf16", detect_every=2))
    assert note == (
        "note: scored with faster options (precision = 'bf16', detect_every = 2): these are not the protocol's "
        "numbers, not comparable with published LSE-D/LSE-C nor with runs made without these options"
    )
    custom = RunRecord("0", {"detect_every": 4}, (WeightsRecord("syncnet", "/w", "b" * 64, True),), "cpu")
    lines = str(run_notice(custom)).splitlines()
    assert lines[0].startswith("note: scored with custom weights") and "(detect_every = 4)" in lines[1]


def test_the_html_report_and_job_summary_carry_the_notice(tmp_path: Path) -> None:
    from pytest_lipsync.reports.github import markdown_summary
    from pytest_lipsync.reports.html import write_report

    page = write_report(Report(_run(precision="bf16"), ()), tmp_path / "html").read_text()
    assert "faster options (precision = &#x27;bf16&#x27;)" in page
    summary = markdown_summary([], {}, {}, notice=run_notice(_run(detect_every=2)))
    assert "_note: scored with faster options (detect_every = 2)" in html.unescape(summary)  # punctuation as entities


# ---------------------------------------------------------------- precision and device plumbing


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every device computes bfloat16 in hardware, whatever this machine's CPU or GPU."""
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)


def test_fp16_on_the_cpu_is_refused_naming_bf16(native_bf16: None) -> None:
    with pytest.raises(ConfigError, match="'precision' is 'fp16', but on the CPU.*Use precision = 'bf16'"):
        runtime.check_precision("fp16", torch.device("cpu"))
    for precision in ("fp32", "bf16"):
        runtime.check_precision(precision, torch.device("cpu"))
    runtime.check_precision("fp16", torch.device("cuda"))  # a torch.device names CUDA without initialising it


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cpu", "'bf16', but this CPU has no bfloat16 instructions .*slower than float32. Leave precision at 'fp32'"),
        (
            "cuda:1",
            "'bf16', but cuda:1 is older than Ampere .*Leave precision at 'fp32' on this machine, or use 'fp16'",
        ),
    ],
)
def test_bf16_without_native_bfloat16_is_refused(device: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 is many times slower than fp32 (one forward pass over 1,000 s on a CPU without it), and a
    forward pass is the step the timeout cannot interrupt: refused before any model runs."""
    monkeypatch.setattr(runtime, "native_bf16", lambda asked: asked != torch.device(device))
    with pytest.raises(ConfigError, match=message):
        runtime.check_precision("bf16", torch.device(device))
    runtime.check_precision("fp32", torch.device(device))


@pytest.mark.parametrize(
    ("capabilities", "native"),
    [
        ({"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}, False),
        ({"architecture": "x86_64", "avx512_f": True, "avx512_bf16": True}, True),
        ({"architecture": "x86_64", "avx512_bf16": False, "amx_bf16": True}, True),
        ({"architecture": "arm64", "neon": True, "bf16": False, "sve_bf16": False}, False),
        ({"architecture": "arm64", "neon": True, "bf16": True}, True),
        ({}, False),
    ],
)
def test_native_bf16_on_the_cpu_is_read_from_its_capabilities(
    capabilities: dict[str, object], native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert runtime.native_bf16(torch.device("cpu")) is native


def test_an_older_torch_is_asked_about_avx512_bf16_and_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert runtime.native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not runtime.native_bf16(torch.device("cpu"))


@pytest.mark.parametrize(("capability", "native"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_native_bf16_on_cuda_starts_with_ampere(
    capability: tuple[int, int], native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability)
    assert runtime.native_bf16(torch.device("cuda:0")) is native


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_convolutions_in_the_chosen_dtype(precision: Precision, dtype: torch.dtype) -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    with runtime.autocast("fp32", torch.device("cpu")):
        assert conv(torch.ones(1, 3, 5, 5)).dtype == torch.float32
    context = runtime.autocast(precision, torch.device("cpu"))
    assert isinstance(context, torch.autocast) and context.fast_dtype == dtype and context.device == "cpu"


class _HostTensor:
    """Stands in for ``torch.from_numpy``'s tensor: records the calls a copy to a device makes."""

    def __init__(self, calls: list[tuple[object, ...]]) -> None:
        self.calls = calls

    def pin_memory(self) -> _HostTensor:
        self.calls.append(("pin_memory",))
        return self

    def to(self, device: torch.device, non_blocking: bool = False) -> str:
        self.calls.append(("to", str(device), non_blocking))
        return "on the device"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cuda:1", [("pin_memory",), ("to", "cuda:1", True)]),
        ("cpu", [("to", "cpu", False)]),
        ("mps", [("to", "mps", False)]),
    ],
)
def test_host_batches_are_pinned_and_copied_asynchronously_only_for_cuda(
    device: str, expected: list[tuple[object, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(torch, "from_numpy", lambda array: _HostTensor(calls))
    assert runtime.to_device(np.zeros(3), torch.device(device)) == "on the device"
    assert calls == expected


def test_a_real_cpu_copy_is_neither_pinned_nor_copied() -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    tensor = runtime.to_device(array, torch.device("cpu"))
    assert not tensor.is_pinned() and tensor.data_ptr() == array.ctypes.data  # shares the numpy buffer


def test_cuda_without_a_cuda_build_is_the_existing_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="setting 'device' is 'cuda:0' but this PyTorch build sees no CUDA device"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")


def test_models_and_quality_send_their_batches_through_to_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host-to-device copy of the scoring path goes through ``to_device`` with the scorer's device."""
    from pytest_lipsync.quality.accumulate import QualityAccumulator
    from pytest_lipsync.quality.settings import QualitySettings

    seen: list[tuple[tuple[int, ...], str]] = []
    real = runtime.to_device

    def spy(array: np.ndarray, device: torch.device) -> torch.Tensor:
        seen.append((array.shape, str(device)))
        return real(array, torch.device("cpu"))

    monkeypatch.setattr(runtime, "to_device", spy)
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    QualityAccumulator(QualitySettings(), "meta")._measure(frames, frames)
    assert seen == [((2, 8, 8, 3), "meta"), ((2, 8, 8, 3), "meta")]
