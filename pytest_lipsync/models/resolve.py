"""Which weights file a run uses, found in a fixed order, and loading it.

Order: the explicit setting or flag, the model's environment variable, ``$LIPSYNC_HOME/<file>``, the user
cache directory, and finally a download into the cache. A file the user names (setting, flag or
environment) is their choice: any content is accepted, and when it is not the released file it is marked
*custom* with its SHA-256, so reports never compare scores across different weights silently. A file in
``LIPSYNC_HOME`` or the cache is only ever meant to be the released one, so a mismatch there is damage and
an error, never a silent substitute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from pytest_lipsync.errors import ConfigError, WeightsError, not_a_regular_file
from pytest_lipsync.models.download import download, is_mirror_url, unavailable
from pytest_lipsync.models.loading import load_into
from pytest_lipsync.models.registry import LPIPS_FILES, S3FD, SYNCNET, WeightsSpec
from pytest_lipsync.models.verify import file_sha256
from pytest_lipsync.results import WeightsRecord
from pytest_lipsync.settings import Settings

if TYPE_CHECKING:
    import torch

_APP = "pytest-lipsync"
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class ResolvedWeights:
    """The file a run will load, and what a report must say about it.

    ``source`` names where it was found: the setting name, the environment variable, ``LIPSYNC_HOME``,
    ``cache`` or ``download``.
    """

    spec: WeightsSpec
    path: Path
    sha256: str
    custom: bool
    source: str

    def record(self) -> WeightsRecord:
        return WeightsRecord(self.spec.name, str(self.path), self.sha256, self.custom)


@dataclass(frozen=True)
class RunWeights:
    """The files one set of settings scores with: SyncNet always, S3FD when the pipeline detects faces with it,
    LPIPS's trunk and linear heads when LPIPS is on."""

    syncnet: ResolvedWeights
    s3fd: ResolvedWeights | None
    lpips: tuple[ResolvedWeights, ResolvedWeights] | None = None

    def records(self) -> tuple[WeightsRecord, ...]:
        return tuple(w.record() for w in (self.syncnet, self.s3fd, *(self.lpips or ())) if w is not None)


def resolve_run_weights(settings: Settings) -> RunWeights:
    """Resolve (never load) every file ``settings`` need, so that a missing one fails before any model loads.

    The result cache identifies a run by these hashes too, which is why resolving is separate from loading.
    FID's network is resolved by the dataset's FID, which is not a per-video number (``scoring.dataset``).
    """
    syncnet = resolve_weights(SYNCNET, settings.syncnet_weights, offline=settings.offline)
    uses_s3fd = settings.protocol == "pipeline" and not settings.detector
    s3fd = resolve_weights(S3FD, settings.s3fd_weights, offline=settings.offline) if uses_s3fd else None
    lpips = None
    if settings.computes("lpips"):
        trunk, heads = LPIPS_FILES[settings.lpips_net]
        lpips = resolve_weights(trunk, offline=settings.offline), resolve_weights(heads, offline=settings.offline)
    return RunWeights(syncnet, s3fd, lpips)


def cache_dir() -> Path:
    """The platform's user cache directory (``$XDG_CACHE_HOME/pytest-lipsync`` on Linux)."""
    return Path(platformdirs.user_cache_dir(_APP, appauthor=False))


def home_dir() -> Path | None:
    value = os.environ.get("LIPSYNC_HOME", "")
    return Path(value).expanduser() if value else None


def offline_from_env() -> bool:
    """``LIPSYNC_OFFLINE``: a typo must not silently allow (or forbid) network access."""
    raw = os.environ.get("LIPSYNC_OFFLINE", "")
    value = raw.strip().lower()
    if value not in _YES | _NO:
        raise ConfigError(
            f"LIPSYNC_OFFLINE={raw!r} is not a yes/no value",
            hint="Set LIPSYNC_OFFLINE=1 to forbid downloads, or unset it",
        )
    return value in _YES


def mirrors_from_env() -> tuple[str, ...]:
    """``LIPSYNC_MIRRORS``: base URLs (space or comma separated) tried before the official ones.

    A lab behind a firewall points every run, fetch-on-first-use included, at its own copy this way.
    """
    raw = os.environ.get("LIPSYNC_MIRRORS", "")
    urls = tuple(url for url in raw.replace(",", " ").split() if url)
    for url in urls:
        if not is_mirror_url(url):
            raise ConfigError(
                f"LIPSYNC_MIRRORS holds {url!r}, which is not an http://, https:// or file:// URL",
                hint="Give base URLs that hold the files under their released names, separated by spaces",
            )
    return urls


def resolve_weights(
    spec: WeightsSpec,
    explicit: str | Path | None = None,
    *,
    offline: bool = False,
    mirrors: Sequence[str] = (),
    progress: bool = True,
) -> ResolvedWeights:
    """The weights to use, fetched into the cache on first use unless offline (argument or environment).

    ``mirrors`` come first, then those of ``LIPSYNC_MIRRORS``, then the official URLs.
    """
    found = locate_weights(spec, explicit)
    if found is not None:
        return found
    directory = cache_dir()
    if offline or offline_from_env():
        raise unavailable(
            spec,
            directory,
            f"not found ({_searched()}), and offline mode (--offline, --lipsync-offline or LIPSYNC_OFFLINE) "
            "forbids downloading it",
        )
    path = download(spec, directory, mirrors=[*mirrors, *mirrors_from_env()], progress=progress)
    return ResolvedWeights(spec, path, spec.sha256, custom=False, source="download")


def locate_weights(spec: WeightsSpec, explicit: str | Path | None = None) -> ResolvedWeights | None:
    """The weights already on this machine, in resolution order; ``None`` if there are none. No network."""
    if explicit:
        return _chosen(spec, Path(explicit), spec.setting)
    if os.environ.get(spec.env_var):
        return _chosen(spec, Path(os.environ[spec.env_var]), spec.env_var)
    for directory, source in _managed_dirs():
        if (directory / spec.filename).exists():
            return _released(spec, directory / spec.filename, source)
    return None


def load_resolved(module: torch.nn.Module, weights: ResolvedWeights, *, model: str) -> None:
    """Fill ``module`` safely; a verified released file that does not fit is this package's bug."""
    try:
        load_into(module, weights.path, model=model)
    except WeightsError as exc:
        if weights.custom:
            raise
        raise WeightsError(
            f"is the released {weights.spec.filename} (SHA-256 verified) but does not load into {model}: {exc.what}",
            path=weights.path,
            hint="This is a bug in pytest-lipsync: please report it with this message and the output of "
            "`lipsync doctor`",
            facts={"sha256": weights.sha256},
        ) from exc


def _managed_dirs() -> list[tuple[Path, str]]:
    home = home_dir()
    return ([(home, "LIPSYNC_HOME")] if home else []) + [(cache_dir(), "cache")]


def _searched() -> str:
    return "looked in " + " and ".join(str(directory) for directory, _ in _managed_dirs())


def _chosen(spec: WeightsSpec, path: Path, source: str) -> ResolvedWeights:
    """A file the user named: used whatever it holds, marked custom unless it is the released file."""
    path = path.expanduser().absolute()
    if not path.is_file():
        problem = not_a_regular_file(path) or "does not exist"
        raise WeightsError(
            f"{problem} ({source} points at it)",
            path=path,
            hint=f"Fix {source}, or remove it to use the released {spec.filename}",
        )
    digest = file_sha256(path)
    custom = digest != spec.sha256
    return ResolvedWeights(spec, path, digest, custom=custom, source=source)


def _released(spec: WeightsSpec, path: Path, source: str) -> ResolvedWeights:
    """A file in a managed directory: the released bytes, or an error saying how to repair it."""
    if not path.is_file():
        raise _not_released(spec, path, not_a_regular_file(path) or "does not exist")
    size = path.stat().st_size
    if size != spec.size:
        raise _not_released(spec, path, f"has {size:,} bytes, expected {spec.size:,}", size=size)
    actual = file_sha256(path, sidecar=True)
    if actual != spec.sha256:
        raise _not_released(spec, path, f"has SHA-256 {actual}, expected {spec.sha256}", actual_sha256=actual)
    return ResolvedWeights(spec, path, actual, custom=False, source=source)


def _not_released(spec: WeightsSpec, path: Path, problem: str, **facts: object) -> WeightsError:
    return WeightsError(
        f"is not the released {spec.filename}: it {problem}, so it is not used",
        path=path,
        hint=(
            f"Delete it and run `lipsync fetch-models --to {path.parent}`, or, to use your own {spec.name} "
            f"weights on purpose, point {spec.env_var} or the {spec.setting} setting at it"
        ),
        facts={"expected_size": spec.size, "expected_sha256": spec.sha256, **facts},
    )
