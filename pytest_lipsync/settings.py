"""One frozen object holding every setting that changes how a video is scored.

Everything that can move a number lives here, so that a result (and a cache entry, and a baseline) can
record exactly what produced it. Sources (pyproject, environment, flags) are merged by the caller; this
module validates values and names the offending key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.quality.settings import Color, QualitySettings, Region, SsimWindow

Protocol = Literal["pipeline", "cropped"]
Fidelity = Literal["reference", "clean"]

PROTOCOLS: tuple[str, ...] = ("pipeline", "cropped")
FIDELITIES: tuple[str, ...] = ("reference", "clean")
MAX_PIXELS = 36_000_000  # a little over 8K (7680x4320 is 33.2 M pixels): the ``max_pixels`` default
# The ``max_corrupt_fraction`` default: a damaged frame touches the 5 SyncNet windows around it, so 1 % of
# damaged frames touches at most 5 % of the windows the means are taken over; more fails the video.
MAX_CORRUPT_FRACTION = 0.01
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
_QUALITY = QualitySettings()
# Flat copies of QualitySettings' fields (pyproject keys are Settings' fields), validated by QualitySettings.
_QUALITY_KEYS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(QualitySettings))

# Settings that move the numbers; the others (where weights live, batch sizes) do not.
_RESULT_KEYS: tuple[str, ...] = (
    "protocol",
    "fidelity",
    "facedet_scale",
    "crop_scale",
    "min_track",
    "num_failed_det",
    "min_face_size",
    "scene_threshold",
    "detector",
)


@dataclass(frozen=True)
class Settings:
    """Scoring settings with the reference pipeline's defaults (spec/PROTOCOL.md)."""

    protocol: Protocol = "pipeline"
    fidelity: Fidelity = "reference"
    device: str = "auto"
    syncnet_weights: str | None = None
    s3fd_weights: str | None = None
    detector: str | None = None
    offline: bool = False
    batch_size: int = 32
    facedet_scale: float = 0.25
    crop_scale: float = 0.4
    min_track: int = 100
    num_failed_det: int = 25
    min_face_size: float = 100.0
    scene_threshold: float = 30.0
    reference: str | None = None  # ground-truth directory: PSNR/SSIM are computed when set
    ssim_window: SsimWindow = _QUALITY.ssim_window
    color: Color = _QUALITY.color
    region: Region = _QUALITY.region
    resize_reference: bool = _QUALITY.resize_reference
    max_length_mismatch: int = _QUALITY.max_length_mismatch
    max_pixels: int = MAX_PIXELS  # frames above this (from the header) are refused before decoding: too_large
    max_corrupt_fraction: float = MAX_CORRUPT_FRACTION  # of source frames lost or concealed: decode_error above it
    timeout: float | None = None  # seconds per video; None: 60 s + 20 x its duration (see ``deadline``)

    def __post_init__(self) -> None:
        _choice("protocol", self.protocol, PROTOCOLS)
        _choice("fidelity", self.fidelity, FIDELITIES)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ConfigError(
                f"setting 'device' is {self.device!r}",
                hint="Use one of auto, cpu, cuda, cuda:N",
            )
        _positive("batch_size", self.batch_size, integer=True)
        _positive("facedet_scale", self.facedet_scale)
        _positive("min_track", self.min_track, integer=True)
        _positive("num_failed_det", self.num_failed_det, integer=True)
        _positive("scene_threshold", self.scene_threshold)
        _positive("max_pixels", self.max_pixels, integer=True)
        if self.timeout is not None:
            _positive("timeout", self.timeout)
        if not _is_number(self.max_corrupt_fraction) or not 0 <= self.max_corrupt_fraction <= 1:
            raise ConfigError(
                f"setting 'max_corrupt_fraction' is {self.max_corrupt_fraction!r}", hint="Use a number from 0 to 1"
            )
        for key in ("crop_scale", "min_face_size"):
            value = getattr(self, key)
            if not _is_number(value) or value < 0:
                raise ConfigError(f"setting {key!r} is {value!r}", hint="Use a number >= 0")
        self.quality  # noqa: B018 -- builds QualitySettings, which validates the quality keys

    @property
    def quality(self) -> QualitySettings:
        """The frame quality settings (PSNR/SSIM variant and alignment tolerances) as the quality module takes them."""
        return QualitySettings(**{key: getattr(self, key) for key in _QUALITY_KEYS})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def result_settings(self) -> dict[str, Any]:
        """The settings a result depends on: what a cache key or a baseline must match."""
        keys = _RESULT_KEYS if self.protocol == "pipeline" else ("protocol", "fidelity")
        if self.reference is not None:  # the directory itself moves no number; the variant does
            keys += _QUALITY_KEYS
        return {key: getattr(self, key) for key in keys}


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"setting {key!r} is {value!r}", hint=f"Use one of: {', '.join(allowed)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(key: str, value: object, *, integer: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)
    if not ok or value <= 0:  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"setting {key!r} is {value!r}", hint=f"Use {kind} > 0")
