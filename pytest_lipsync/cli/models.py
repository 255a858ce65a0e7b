"""``lipsync fetch-models`` and ``lipsync doctor``: argument definitions and command bodies.

The ``lipsync`` entry point owns the sub-parsers; these functions fill them in and run the command,
returning the exit code (0 ok, 1 failure, 2 usage or configuration error).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pytest_lipsync.errors import ConfigError, WeightsError
from pytest_lipsync.models import registry
from pytest_lipsync.models.download import download, is_mirror_url, manual_instructions
from pytest_lipsync.models.loading import read_state_dict
from pytest_lipsync.models.registry import WeightsSpec
from pytest_lipsync.models.resolve import cache_dir, home_dir, locate_weights, mirrors_from_env, offline_from_env
from pytest_lipsync.version import __version__

# (import name, distribution to install): what scoring imports, in pipeline order.
_DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"),
    ("numpy", "numpy"),
    ("av", "av"),
    ("cv2", "opencv-python-headless"),
    ("scenedetect", "scenedetect-headless"),
    ("skimage", "scikit-image"),
    ("python_speech_features", "python_speech_features"),
)


@dataclass(frozen=True)
class _Check:
    """One line of the doctor's report; any line that is not ``ok`` means scoring cannot run."""

    label: str
    detail: str
    ok: bool = True


def add_fetch_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to",
        type=Path,
        metavar="DIR",
        help="directory to put the files in (default: the user cache directory, which scoring searches; "
        "for another directory, set LIPSYNC_HOME=DIR when scoring)",
    )
    parser.add_argument(
        "--mirror",
        dest="mirrors",
        action="append",
        default=[],
        type=_mirror_url,
        metavar="URL",
        help="base URL holding the files under their released names, tried before the official URLs (repeatable)",
    )
    _add_metrics_argument(parser, "also fetch the networks of these opt-in metrics, for runners that score offline")


def run_fetch_models(args: argparse.Namespace) -> int:
    """Download and verify every released file of LSE, and those of the metrics asked for; files already verified
    there are kept."""
    try:
        _refuse_offline()
        mirrors = [*args.mirrors, *mirrors_from_env()]
    except ConfigError as exc:
        print(f"lipsync fetch-models: error: {exc}", file=sys.stderr)
        return 2
    directory: Path = args.to or cache_dir()
    failures = 0
    for spec in _files(args.metrics):
        try:
            path = download(spec, directory, mirrors=mirrors)
        except WeightsError as exc:
            print(f"lipsync fetch-models: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"{spec.filename}: {path} (SHA-256 verified)")
    if not failures and not _searched_by_default(directory):
        print(f"Scoring does not look in {directory} by default: set LIPSYNC_HOME={directory}")
    return 1 if failures else 0


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    for spec in registry.RELEASED:
        parser.add_argument(
            f"--{spec.setting.replace('_', '-')}",
            dest=spec.setting,
            type=Path,
            metavar="PATH",
            help=f"check this file instead of resolving {spec.filename}",
        )
    _add_metrics_argument(parser, "also check the networks of these opt-in metrics")


def run_doctor(args: argparse.Namespace) -> int:
    """Report what scoring would use, without downloading anything; 1 if scoring could not run."""
    checks = [
        _Check("pytest-lipsync", _package_version()),
        _Check("python", f"{platform.python_version()} ({sys.executable})"),
        *(_dependency(module, distribution) for module, distribution in _DEPENDENCIES),
        _device(),
        _Check("cache", str(cache_dir())),
        _Check("LIPSYNC_HOME", str(home_dir() or "not set")),
        *(_weights(spec, vars(args).get(spec.setting), args.metrics) for spec in _files(args.metrics)),
    ]
    for check in checks:
        print(f"{'ok' if check.ok else 'FAIL':<5}{check.label:<24}{check.detail}")
    problems = sum(not check.ok for check in checks)
    print("ready: scoring can run" if not problems else f"not ready: {problems} problem(s) marked FAIL above")
    return 1 if problems else 0


def _add_metrics_argument(parser: argparse.ArgumentParser, what: str) -> None:
    # "--metrics lpips fid", or repeated as lipsync score takes it: "--metrics lpips --metrics fid"
    parser.add_argument(
        "--metrics",
        action="extend",
        nargs="+",
        default=[],
        choices=list(registry.METRIC_FILES),
        metavar="METRIC",
        help=f'{what}: {", ".join(registry.METRIC_FILES)} (lpips-vgg: LPIPS with lpips_net = "vgg")',
    )


def _files(metrics: list[str]) -> list[WeightsSpec]:
    """LSE's released files, then those of ``metrics``, in order and each once (two metrics may share one)."""
    asked = (spec for metric in metrics for spec in registry.METRIC_FILES[metric])
    return list(dict.fromkeys([*registry.RELEASED, *asked]))


def _mirror_url(value: str) -> str:
    if not is_mirror_url(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http://, https:// or file:// URL")
    return value


def _refuse_offline() -> None:
    if offline_from_env():
        raise ConfigError(
            "LIPSYNC_OFFLINE is set, which forbids the downloads this command makes",
            hint="Unset LIPSYNC_OFFLINE to fetch the weights",
        )


def _searched_by_default(directory: Path) -> bool:
    searched = [home_dir(), cache_dir()]
    return directory.resolve() in {place.resolve() for place in searched if place is not None}


def _package_version() -> str:
    """The version and where it was imported from: a stale install beside a checkout is a classic."""
    return f"{__version__} ({Path(__file__).resolve().parents[1]})"


def _dependency(module_name: str, distribution: str) -> _Check:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken install fails in many ways (missing shared library, bad ABI...)
        problem = f"cannot be imported ({type(exc).__name__}: {exc}); pip install {distribution}"
        return _Check(module_name, problem, False)
    version = getattr(module, "__version__", None) or importlib.metadata.version(distribution)
    if module_name == "av":
        version += f" (FFmpeg {_library_versions(module)})"
    return _Check(module_name, version)


def _library_versions(av: ModuleType) -> str:
    """PyAV's bundled FFmpeg libraries: their encoders decide the reference-fidelity re-encodes."""
    return ", ".join(f"{name} {'.'.join(map(str, version))}" for name, version in av.library_versions.items())


def _device() -> _Check:
    """What ``device = "auto"`` picks."""
    try:
        import torch
    except Exception:  # reported by the torch dependency line
        return _Check("device (auto)", "unknown: torch cannot be imported", False)
    if torch.cuda.is_available():
        return _Check("device (auto)", f"cuda ({torch.cuda.get_device_name(0)})")
    return _Check("device (auto)", "cpu (CUDA is not available)")


def _weights(spec: WeightsSpec, explicit: Path | None, metrics: list[str]) -> _Check:
    label = f"weights {spec.name}"
    try:
        found = locate_weights(spec, explicit)
    except WeightsError as exc:
        return _Check(label, f"unusable: {exc}", False)
    if found is None:
        fetch = " ".join(["lipsync fetch-models", *(["--metrics", *metrics] if spec not in registry.RELEASED else [])])
        return _Check(label, f"missing: run `{fetch}`. {manual_instructions(spec, cache_dir())}", False)
    if not found.custom:
        return _Check(label, f"{found.path} (released file, SHA-256 verified; found via {found.source})")
    try:
        tensors = len(read_state_dict(found.path))
    except (WeightsError, ImportError) as exc:
        return _Check(label, f"unusable custom weights: {exc}", False)
    return _Check(
        label,
        f"{found.path} (CUSTOM weights, SHA-256 {found.sha256}, {tensors} tensors; found via {found.source}): "
        "scores will be marked as computed with custom weights",
    )
