"""Finding weights in the documented order, verifying them once, loading them safely, and ``lipsync doctor``.

No test here may reach the network: every spec points at an address nobody listens on, and tests that
could fall through to a download run offline or with ``urlopen`` replaced by a tripwire.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest
import torch

import pytest_lipsync
from pytest_lipsync.cli.models import add_doctor_arguments, run_doctor
from pytest_lipsync.errors import ConfigError, WeightsError
from pytest_lipsync.models import registry, verify
from pytest_lipsync.models.loading import read_state_dict
from pytest_lipsync.models.registry import S3FD, SYNCNET, WeightsSpec
from pytest_lipsync.models.resolve import cache_dir, load_resolved, resolve_weights

NOWHERE = "http://127.0.0.1:9/standin.pt"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own cache and no inherited LIPSYNC_* variables."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for variable in ("LIPSYNC_HOME", "LIPSYNC_OFFLINE", "LIPSYNC_STANDIN_WEIGHTS"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was used")

    monkeypatch.setattr("urllib.request.urlopen", tripwire)


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


RELEASED_BYTES = state_bytes({"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.ones(2)})
CUSTOM_BYTES = state_bytes({"weight": torch.full((2, 3), 0.5), "bias": torch.zeros(2)})
STANDIN = WeightsSpec(
    "standin", "standin.pt", len(RELEASED_BYTES), hashlib.sha256(RELEASED_BYTES).hexdigest(), (NOWHERE,)
)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class RunsCode:
    """Unpickling this calls ``open(marker, "w")``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_environment_variables_follow_the_model_names() -> None:
    assert (SYNCNET.env_var, S3FD.env_var) == ("LIPSYNC_SYNCNET_WEIGHTS", "LIPSYNC_S3FD_WEIGHTS")
    assert (SYNCNET.setting, S3FD.setting) == ("syncnet_weights", "s3fd_weights")


def test_resolution_order_explicit_then_environment_then_home_then_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None
) -> None:
    explicit = write(tmp_path / "explicit.pt", CUSTOM_BYTES + b"1")
    from_env = write(tmp_path / "env.pt", CUSTOM_BYTES + b"2")
    home = write(tmp_path / "home" / "standin.pt", RELEASED_BYTES)
    cached = write(cache_dir() / "standin.pt", RELEASED_BYTES)
    monkeypatch.setenv("LIPSYNC_STANDIN_WEIGHTS", str(from_env))
    monkeypatch.setenv("LIPSYNC_HOME", str(home.parent))

    steps = [resolve_weights(STANDIN, str(explicit), offline=True)]
    steps.append(resolve_weights(STANDIN, None, offline=True))
    monkeypatch.setenv("LIPSYNC_STANDIN_WEIGHTS", "")  # empty means unset
    steps.append(resolve_weights(STANDIN, offline=True))
    monkeypatch.delenv("LIPSYNC_HOME")
    steps.append(resolve_weights(STANDIN, offline=True))
    cached.unlink()

    assert [(step.path, step.source, step.custom) for step in steps] == [
        (explicit, "standin_weights", True),
        (from_env, "LIPSYNC_STANDIN_WEIGHTS", True),
        (home, "LIPSYNC_HOME", False),
        (cached, "cache", False),
    ]
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(STANDIN, offline=True)


def test_named_file_is_custom_unless_it_holds_the_released_bytes(tmp_path: Path) -> None:
    custom = resolve_weights(STANDIN, write(tmp_path / "mine.pt", CUSTOM_BYTES), offline=True)
    released = resolve_weights(STANDIN, write(tmp_path / "copy.pt", RELEASED_BYTES), offline=True)

    assert custom.custom and custom.sha256 == hashlib.sha256(CUSTOM_BYTES).hexdigest()
    assert not released.custom and released.sha256 == STANDIN.sha256


@pytest.mark.parametrize("via", ["setting", "environment"])
def test_named_file_that_is_missing_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, via: str
) -> None:
    write(cache_dir() / "standin.pt", RELEASED_BYTES)
    missing = tmp_path / "typo.pt"
    if via == "environment":
        monkeypatch.setenv("LIPSYNC_STANDIN_WEIGHTS", str(missing))

    with pytest.raises(WeightsError) as caught:
        resolve_weights(STANDIN, missing if via == "setting" else None, offline=True)

    source = "standin_weights" if via == "setting" else "LIPSYNC_STANDIN_WEIGHTS"
    assert str(caught.value).startswith(f"{missing}: does not exist ({source} points at it). Fix {source}")


@pytest.mark.parametrize("via", ["setting", "environment", "LIPSYNC_HOME"])
def test_weights_that_are_a_fifo_are_refused_unread_saying_so(
    make_fifo: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, via: str
) -> None:
    fifo = make_fifo("standin.pt")
    if via == "environment":
        monkeypatch.setenv("LIPSYNC_STANDIN_WEIGHTS", str(fifo))
    elif via == "LIPSYNC_HOME":
        monkeypatch.setenv("LIPSYNC_HOME", str(tmp_path))

    with pytest.raises(WeightsError) as caught:
        resolve_weights(STANDIN, fifo if via == "setting" else None, offline=True)

    source = {"setting": "standin_weights", "environment": "LIPSYNC_STANDIN_WEIGHTS"}.get(via)
    problem = (
        f"is a FIFO, not a regular file ({source} points at it)"
        if source
        else ("is not the released standin.pt: it is a FIFO, not a regular file, so it is not used")
    )
    assert str(caught.value).startswith(f"{fifo}: {problem}")
    with pytest.raises(WeightsError, match=re.escape(f"{fifo}: is a FIFO, not a regular file")):
        read_state_dict(fifo)


@pytest.mark.parametrize("where", ["LIPSYNC_HOME", "cache"])
def test_damaged_file_in_a_managed_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    directory = tmp_path / "home" if where == "LIPSYNC_HOME" else cache_dir()
    monkeypatch.setenv("LIPSYNC_HOME", str(tmp_path / "home"))
    damaged = bytearray(RELEASED_BYTES)
    damaged[100] ^= 0xFF
    path = write(directory / "standin.pt", bytes(damaged))

    with pytest.raises(WeightsError) as caught:
        resolve_weights(STANDIN, offline=True)

    actual = hashlib.sha256(damaged).hexdigest()
    assert str(caught.value).startswith(
        f"{path}: is not the released standin.pt: it has SHA-256 {actual}, expected {STANDIN.sha256}, so it is not used"
    )
    assert caught.value.facts["actual_sha256"] == actual

    write(path, RELEASED_BYTES[:-1])
    with pytest.raises(WeightsError, match=re.escape(f"has {STANDIN.size - 1:,} bytes, expected {STANDIN.size:,}")):
        resolve_weights(STANDIN, offline=True)


def test_verification_is_remembered_until_the_file_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Path] = []
    real_hash = verify._hash_file
    monkeypatch.setattr(verify, "_hash_file", lambda path: hashed.append(path) or real_hash(path))  # type: ignore[func-returns-value]  # records the call: append's None falls through to the real one
    path = write(cache_dir() / "standin.pt", RELEASED_BYTES)

    resolve_weights(STANDIN, offline=True)
    resolve_weights(STANDIN, offline=True)
    assert hashed == [path]  # the second call used the in-process memo

    monkeypatch.setattr(verify, "_MEMO", {})  # as a new process would start
    resolve_weights(STANDIN, offline=True)
    assert hashed == [path]  # the sidecar vouched for this size and mtime

    write(path, CUSTOM_BYTES[: len(RELEASED_BYTES)].ljust(len(RELEASED_BYTES), b"\0"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    monkeypatch.setattr(verify, "_MEMO", {})
    with pytest.raises(WeightsError, match=r"is not the released standin\.pt"):
        resolve_weights(STANDIN, offline=True)
    assert hashed == [path, path]


def test_named_files_get_no_sidecar(tmp_path: Path) -> None:
    resolve_weights(STANDIN, write(tmp_path / "mine" / "mine.pt", CUSTOM_BYTES), offline=True)

    assert os.listdir(tmp_path / "mine") == ["mine.pt"]


def test_code_executing_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1, 3), "payload": RunsCode(marker)}, path)
    weights = resolve_weights(STANDIN, path, offline=True)

    with pytest.raises(WeightsError) as caught:
        load_resolved(torch.nn.Linear(3, 1), weights, model="stand-in")

    assert weights.custom
    assert not marker.exists()
    assert "refused to load" in str(caught.value) and "would run code" in str(caught.value)


def test_released_file_loads_and_a_misfit_is_reported_as_a_bug() -> None:
    write(cache_dir() / "standin.pt", RELEASED_BYTES)
    weights = resolve_weights(STANDIN, offline=True)
    fitting = torch.nn.Linear(3, 2)

    load_resolved(fitting, weights, model="stand-in")
    with pytest.raises(WeightsError) as caught:
        load_resolved(torch.nn.Linear(4, 2), weights, model="stand-in")

    assert torch.equal(fitting.weight, torch.arange(6.0).reshape(2, 3))
    assert str(caught.value).startswith(
        f"{weights.path}: is the released standin.pt (SHA-256 verified) but does not load into stand-in: "
        "is not stand-in weights: 'weight' has shape (2, 3), expected (2, 4). This is a bug in pytest-lipsync"
    )


def test_custom_file_that_does_not_fit_keeps_the_plain_message(tmp_path: Path) -> None:
    weights = resolve_weights(STANDIN, write(tmp_path / "mine.pt", CUSTOM_BYTES), offline=True)

    with pytest.raises(WeightsError) as caught:
        load_resolved(torch.nn.Linear(4, 2), weights, model="stand-in")

    assert "bug" not in str(caught.value)
    assert "'weight' has shape (2, 3), expected (2, 4)" in str(caught.value)


def test_malformed_offline_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSYNC_OFFLINE", "sometimes")

    with pytest.raises(ConfigError, match="LIPSYNC_OFFLINE='sometimes' is not a yes/no value"):
        resolve_weights(STANDIN)


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(registry, "RELEASED", (STANDIN,))
    parser = argparse.ArgumentParser(prog="lipsync doctor")
    add_doctor_arguments(parser)
    status = run_doctor(parser.parse_args(argv))
    return status, capsys.readouterr().out


def report_line(out: str, label: str) -> tuple[str, str]:
    """(mark, detail) of the doctor's line for ``label``: a 5-wide mark, a 24-wide label, the detail."""
    (line,) = [line for line in out.splitlines() if line[5:29].rstrip() == label]
    return line[:5].rstrip(), line[29:]


def test_doctor_is_ready_with_verified_weights(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    path = write(cache_dir() / "standin.pt", RELEASED_BYTES)

    status, out = doctor(monkeypatch, capsys)

    assert status == 0
    assert out.rstrip().endswith("ready: scoring can run")
    assert report_line(out, "pytest-lipsync")[1].startswith(f"{pytest_lipsync.__version__} (")
    assert report_line(out, "torch") == ("ok", torch.__version__)
    assert report_line(out, "av")[1].startswith(f"{av.__version__} (FFmpeg libavutil ")
    assert report_line(out, "device (auto)")[1].startswith("cuda (" if torch.cuda.is_available() else "cpu (")
    assert report_line(out, "cache") == ("ok", str(cache_dir()))
    assert report_line(out, "weights standin") == ("ok", f"{path} (released file, SHA-256 verified; found via cache)")


def test_doctor_without_weights_says_where_to_put_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    status, out = doctor(monkeypatch, capsys)

    assert status == 1
    mark, line = report_line(out, "weights standin")
    assert mark == "FAIL"
    assert line.startswith("missing: run `lipsync fetch-models`")
    assert f"standin.pt ({STANDIN.size:,} bytes, SHA-256 {STANDIN.sha256}) from {NOWHERE}" in line
    assert f"put it in {cache_dir()}" in line
    assert out.rstrip().endswith("not ready: 1 problem(s) marked FAIL above")
    assert not (cache_dir() / "standin.pt").exists()


def test_doctor_checks_the_networks_of_the_metrics_asked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    """With --metrics the doctor checks those networks too (a file two metrics share, once), and a missing one
    says to fetch it with the same --metrics; without --metrics they are not looked at."""
    write(cache_dir() / "standin.pt", RELEASED_BYTES)
    trunk = WeightsSpec("trunk", "trunk.pt", len(CUSTOM_BYTES), hashlib.sha256(CUSTOM_BYTES).hexdigest(), (NOWHERE,))
    heads = WeightsSpec("heads", "heads.pt", 10, "0" * 64, (NOWHERE,))
    monkeypatch.setattr(registry, "METRIC_FILES", {"lpips": (trunk, heads), "lpips-vgg": (trunk,), "fid": ()})
    trunk_path = write(cache_dir() / "trunk.pt", CUSTOM_BYTES)

    assert doctor(monkeypatch, capsys)[0] == 0  # LSE's file is there; the metrics' are not asked for

    status, out = doctor(monkeypatch, capsys, "--metrics", "lpips", "lpips-vgg")
    assert status == 1
    weights = [line[5:29].rstrip() for line in out.splitlines() if line[5:].startswith("weights ")]
    assert weights == ["weights standin", "weights trunk", "weights heads"]
    assert report_line(out, "weights trunk") == (
        "ok",
        f"{trunk_path} (released file, SHA-256 verified; found via cache)",
    )
    mark, line = report_line(out, "weights heads")
    assert mark == "FAIL" and line.startswith("missing: run `lipsync fetch-models --metrics lpips lpips-vgg`")


def test_doctor_marks_custom_weights_and_refuses_a_code_executing_pickle(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, no_network: None
) -> None:
    mine = write(tmp_path / "mine.pt", CUSTOM_BYTES)
    status, out = doctor(monkeypatch, capsys, "--standin-weights", str(mine))
    assert status == 0
    assert f"(CUSTOM weights, SHA-256 {hashlib.sha256(CUSTOM_BYTES).hexdigest()}, 2 tensors" in out

    marker = tmp_path / "code-ran"
    torch.save({"payload": RunsCode(marker)}, tmp_path / "evil.pt")
    status, out = doctor(monkeypatch, capsys, "--standin-weights", str(tmp_path / "evil.pt"))
    assert status == 1
    mark, line = report_line(out, "weights standin")
    assert (mark, line[: len("unusable custom weights")]) == ("FAIL", "unusable custom weights")
    assert "refused to load" in line
    assert not marker.exists()


def test_doctor_fails_when_a_dependency_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(cache_dir() / "standin.pt", RELEASED_BYTES)
    monkeypatch.setitem(sys.modules, "scenedetect", None)

    status, out = doctor(monkeypatch, capsys)

    assert status == 1
    mark, line = report_line(out, "scenedetect")
    assert (mark, line.startswith("cannot be imported (ModuleNotFoundError: ")) == ("FAIL", True)
    assert line.endswith("pip install scenedetect-headless")
    assert out.rstrip().endswith("not ready: 1 problem(s) marked FAIL above")
