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
Precision = Literal["fp32", "bf16", "fp16"]
# How a video becomes 25 fps frames (media/decode.py): libavfilter's fps filter, or the reference's ffmpeg -r 25.
FrameRule = Literal["fps_filter", "ffmpeg_r25"]

PROTOCOLS: tuple[str, ...] = ("pipeline", "cropped")
FIDELITIES: tuple[str, ...] = ("reference", "clean")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
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
    "frame_rule",
)
# The faster options: never the default, recorded (and called out under every table) only when used, so
# results, cache keys and baselines made before they existed stay comparable with default runs.
FAST_DEFAULTS: dict[str, Any] = {"precision": "fp32", "detect_every": 1}
# What a run recorded before a key existed used, for comparing it with runs that record the key: the faster
# options at their defaults, and libavfilter's fps filter, the only frame rule there was.
IMPLIED_WHEN_ABSENT: dict[str, Any] = {**FAST_DEFAULTS, "frame_rule": "fps_filter"}
# Settings the cropped protocol never reads: it has no detector, no tracks and no crop windows.
PIPELINE_ONLY: frozenset[str] = frozenset({*_RESULT_KEYS, "detect_every", "s3fd_weights"} - {"protocol", "fidelity"})


@dataclass(frozen=True)
class VideoLimits:
    """What opening one video may cost: its frame size, its share of damaged frames, its time.

    The settings of the same names, gathered so that every place that opens a video (LSE, ground truth,
    ``lipsync visualize``, the workers) applies all three, not just the one it remembered.
    """

    max_pixels: int = MAX_PIXELS
    max_corrupt_fraction: float = MAX_CORRUPT_FRACTION
    timeout: float | None = None
    # When the video's clock started (``time.monotonic``); None: when the file is opened. Scoring one video
    # opens it more than once (LSE, the face region, ground truth): one clock for all, as ``timeout`` is per video.
    started: float | None = None


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
    timeout: float | None = None  # seconds per video; None: grows with its length and frame size (``deadline``)
    precision: Precision = "fp32"  # the models' forward dtype; "bf16"/"fp16" are faster, not the protocol's numbers
    detect_every: int = 1  # S3FD on every N-th frame only, tracks interpolated between (pipeline protocol)

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
        _choice("precision", self.precision, PRECISIONS)
        _positive("detect_every", self.detect_every, integer=True)
        for key in ("crop_scale", "min_face_size"):
            value = getattr(self, key)
            if not _is_number(value) or value < 0:
                raise ConfigError(f"setting {key!r} is {value!r}", hint="Use a number >= 0")
        self.quality  # noqa: B018 -- builds QualitySettings, which validates the quality keys

    @property
    def quality(self) -> QualitySettings:
        """The frame quality settings (PSNR/SSIM variant and alignment tolerances) as the quality module takes them."""
        return QualitySettings(**{key: getattr(self, key) for key in _QUALITY_KEYS})

    @property
    def frame_rule(self) -> FrameRule:
        """Which source frame each 25 fps slot shows. Where the pipeline protocol replays the reference, the one
        its ``ffmpeg -r 25`` shows (which lags the nearest frame, and drops and repeats frames as it drifts);
        elsewhere the frame nearest in time, libavfilter's fps filter: the principled choice, and the cropped
        protocol's reference converts no frame rate at all. The same for 25 fps input."""
        return "ffmpeg_r25" if self.protocol == "pipeline" and self.fidelity == "reference" else "fps_filter"

    @property
    def limits(self) -> VideoLimits:
        return VideoLimits(self.max_pixels, self.max_corrupt_fraction, self.timeout)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def result_settings(self) -> dict[str, Any]:
        """The settings a result depends on: what a cache key or a baseline must match."""
        keys = _RESULT_KEYS if self.protocol == "pipeline" else ("protocol", "fidelity")
        if self.reference is not None:  # the directory itself moves no number; the variant does
            keys += _QUALITY_KEYS
        return {**{key: getattr(self, key) for key in keys}, **self.fast_options()}

    def fast_options(self) -> dict[str, Any]:
        """The faster, non-protocol options that take effect in this run (empty for the protocol's own settings)."""
        used = {key: getattr(self, key) for key, default in FAST_DEFAULTS.items() if getattr(self, key) != default}
        return {key: value for key, value in used.items() if key not in PIPELINE_ONLY or self.protocol == "pipeline"}

    def check_detect_every(self) -> None:
        """``detect_every`` must leave tracks joinable: a gap of N frames between detections must not end them.

        Checked on the merged settings (by ``config.resolve`` and the face pipeline), not per source, so that
        ``detect_every`` and ``num_failed_det`` may be raised together from different places."""
        if self.detect_every > self.num_failed_det:
            raise ConfigError(
                f"setting 'detect_every' is {self.detect_every}, more than num_failed_det = {self.num_failed_det}: "
                "every track would end at the first skipped frame",
                hint=f"Use detect_every <= {self.num_failed_det}, or raise num_failed_det to at least {self.detect_every}",
            )


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
