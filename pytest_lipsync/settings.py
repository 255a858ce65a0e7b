"""One frozen object holding every setting that changes how a video is scored.

Everything that can move a number lives here, so that a result (and a cache entry, and a baseline) can
record exactly what produced it. Sources (pyproject, environment, flags) are merged by the caller; this
module validates values and names the offending key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from pytest_lipsync.bounds import SCORING, Range, check_bounds, setting
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.limits import MAX_CORRUPT_FRACTION, MAX_PIXELS, VideoLimits
from pytest_lipsync.metrics import BY_NAME, OPT_IN
from pytest_lipsync.quality.settings import LPIPS_NETS, Color, LpipsNet, QualitySettings, Region, SsimWindow

Protocol = Literal["pipeline", "cropped"]
Fidelity = Literal["reference", "clean"]
Precision = Literal["fp32", "bf16", "fp16"]
# How a video becomes 25 fps frames (media/decode.py): libavfilter's fps filter, or the reference's ffmpeg -r 25.
FrameRule = Literal["fps_filter", "ffmpeg_r25"]

PROTOCOLS: tuple[str, ...] = ("pipeline", "cropped")
FIDELITIES: tuple[str, ...] = ("reference", "clean")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
# Flat copies of QualitySettings' fields (pyproject keys are Settings' fields), validated by QualitySettings.
_QUALITY_FIELDS: dict[str, dataclasses.Field[Any]] = {
    field.name: field for field in dataclasses.fields(QualitySettings)
}
_QUALITY_KEYS: tuple[str, ...] = tuple(_QUALITY_FIELDS)
_COUNT = Range(0, low_open=True, integer=True)
# S3FD sees each frame scaled by facedet_scale (the reference: 0.25). Above 1 it would upsample: no detail to
# find, the square of the factor in time and memory, and the resize overflows long before 1e300.
_FACEDET_SCALE = Range(0, 1, low_open=True)
# The crop's margin around a face box, in face sizes (the reference: 0.4). SyncNet sees the crop resized to
# 224 pixels: past 1 the mouth shrinks to a corner of what it sees, and the window filled per frame before
# resizing grows with the square (a huge value overflows the window's integer bounds).
_CROP_SCALE = Range(0, 1)
# PySceneDetect's content score is a mean of 8-bit HSV differences: 255 already means "never cut".
_SCENE_THRESHOLD = Range(0, 255, low_open=True)

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


def _quality_field(name: str) -> Any:
    """A copy of QualitySettings' field ``name``: its default and its declared range."""
    original = _QUALITY_FIELDS[name]
    return dataclasses.field(default=original.default, metadata=original.metadata)


@dataclass(frozen=True)
class Settings:
    """Scoring settings with the reference pipeline's defaults (docs/protocol.md)."""

    protocol: Protocol = setting(
        "pipeline",
        "how faces are found: `pipeline` cuts scenes, detects faces with S3FD, tracks and crops them; `cropped` "
        "takes every frame as the face crop",
        more="See [protocol.md](protocol.md#two-protocols).",
        commands=("score",),  # visualize draws tracks, which only the pipeline protocol has
    )
    fidelity: Fidelity = setting(
        "reference",
        "`reference` replays the reference scripts' lossy re-encodes (comparable with papers); `clean` skips them",
        more="See [protocol.md](protocol.md#fidelity-reference-and-clean).",
        commands=SCORING,
    )
    device: str = setting(
        "auto", "`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`", commands=SCORING, metavar="DEVICE"
    )
    syncnet_weights: str | None = setting(
        None,
        "a SyncNet weights file of your own",
        more="Results made with any other file than the released one are marked *custom* with its SHA-256.",
        unset="the released `syncnet_v2.model` from the verified cache ([Weights](#weights))",
        commands=SCORING,
        metavar="PATH",
    )
    s3fd_weights: str | None = setting(
        None,
        "an S3FD face detector weights file of your own (pipeline protocol)",
        unset="the released `sfd_face.pth` from the verified cache ([Weights](#weights))",
        commands=SCORING,
        metavar="PATH",
    )
    detector: str | None = setting(
        None,
        "a face detector plug-in used instead of S3FD in the pipeline protocol",
        more="See [protocol.md](protocol.md#the-detector-plug-in).",
        unset="S3FD",
        commands=SCORING,
        metavar="MODULE:FACTORY",
        kind='`"module:factory"`',
    )
    offline: bool = setting(False, "never download weights: a missing file is an error", commands=SCORING)
    batch_size: int = setting(
        32, "SyncNet windows per forward pass (moves no number)", _COUNT, commands=SCORING, metavar="N"
    )
    facedet_scale: float = setting(
        0.25, "scale at which S3FD sees the frames", _FACEDET_SCALE, commands=SCORING, group="pipeline", metavar="N"
    )
    crop_scale: float = setting(
        0.4,
        "margin around the face in a track's crops, in face sizes",
        _CROP_SCALE,
        commands=SCORING,
        group="pipeline",
        metavar="N",
    )
    min_track: int = setting(
        100,
        "a face track needs more than this many frames; shorter scenes are skipped",
        _COUNT,
        more="Lower it for clips under about 4 s.",
        commands=SCORING,
        group="pipeline",
        metavar="N",
    )
    num_failed_det: int = setting(
        25,
        "frames a track may go without a detection and still continue",
        _COUNT,
        commands=SCORING,
        group="pipeline",
        metavar="N",
    )
    min_face_size: float = setting(
        100.0,
        "pixels: a track whose mean box is smaller is dropped",
        Range(0),
        commands=SCORING,
        group="pipeline",
        metavar="N",
    )
    scene_threshold: float = setting(
        30.0,
        "scene-cut threshold (mean HSV change)",
        _SCENE_THRESHOLD,
        commands=SCORING,
        group="pipeline",
        metavar="N",
    )
    # Ground truth: PSNR/SSIM are computed when set. `lipsync visualize` draws tracks and takes none.
    reference: str | None = setting(
        None,
        "ground-truth directory, its videos matched by path relative to the scored directory, then by file stem: "
        "adds PSNR and SSIM",
        more="In pytest, a `::quality` item per video ([quality.md](quality.md)).",
        commands=("score",),
        group="quality",
        metavar="DIR",
    )
    ssim_window: SsimWindow = _quality_field("ssim_window")
    color: Color = _quality_field("color")
    region: Region = _quality_field("region")
    resize_reference: bool = _quality_field("resize_reference")
    max_length_mismatch: int = _quality_field("max_length_mismatch")
    metrics: tuple[str, ...] = setting(
        (),
        "metrics to compute beside LSE (and PSNR/SSIM with ground truth): `lpips` and `fid` against ground truth, "
        "`cpbd` on the generated frames; a threshold or regression rule on one turns it on too; repeatable",
        more="Each loads its network only when on; see [quality.md](quality.md#lpips-fid-and-cpbd).",
        commands=("score",),
        group="quality",
        metavar="NAME",
        kind="list of `lpips`, `cpbd`, `fid`",
    )
    lpips_net: LpipsNet = setting(
        "alex",
        "LPIPS's feature network: `alex` (AlexNet, the lpips package's default) or `vgg` (VGG16)",
        commands=("score",),
        group="quality",
    )
    fid_stride: int = setting(
        1,
        "FID reads every N-th frame of each video, from the first",
        _COUNT,
        commands=("score",),
        group="quality",
        metavar="N",
    )
    fid_max_frames: int | None = setting(
        None,
        "FID reads at most this many frames of each video (after the stride)",
        Range(2, integer=True),
        unset="every sampled frame",
        commands=("score",),
        group="quality",
        metavar="N",
    )
    max_pixels: int = setting(
        MAX_PIXELS, "a video whose header claims larger frames is refused before decoding (`too_large`)", _COUNT
    )
    max_corrupt_fraction: float = setting(
        MAX_CORRUPT_FRACTION,
        "share of damaged frames tolerated; more fails the video (`decode_error`)",
        Range(0, 1),
        commands=SCORING,
        group="limits",
        metavar="F",
    )
    timeout: float | None = setting(  # None: grows with the video's length and frame size (``deadline``)
        None,
        "time limit per video in seconds; past it the video fails (`timeout`)",
        Range(0, low_open=True),
        unset="60 s + 100 s per second of video for each 1280x720 of frame area",
        commands=SCORING,
        group="limits",
        metavar="SECONDS",
    )
    precision: Precision = setting(
        "fp32",
        "the models' forward dtype; `bf16`/`fp16` are faster, not the protocol's numbers",
        more="A [faster option](#faster-options).",
        commands=SCORING,
        group="fast",
    )
    detect_every: int = setting(
        1,
        "run the face detector on every N-th frame only, tracks interpolated between (faster, not the protocol's "
        "numbers)",
        _COUNT,
        more="A [faster option](#faster-options).",
        commands=SCORING,
        group="fast",
        metavar="N",
    )

    def __post_init__(self) -> None:
        _choice("protocol", self.protocol, PROTOCOLS)
        _choice("fidelity", self.fidelity, FIDELITIES)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ConfigError(
                f"setting 'device' is {self.device!r}",
                hint="Use one of auto, cpu, cuda, cuda:N",
            )
        _choice("precision", self.precision, PRECISIONS)
        _choice("lpips_net", self.lpips_net, LPIPS_NETS)
        for name in self.metrics:
            if name not in OPT_IN:
                raise ConfigError(
                    f"setting 'metrics' names {name!r}, which is not a metric to turn on",
                    hint=f"Use {', '.join(OPT_IN)} (LSE is always computed, PSNR and SSIM whenever ground truth is)",
                )
        check_bounds(self)
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
        return {**{key: getattr(self, key) for key in keys}, **self._metric_settings(), **self.fast_options()}

    def computes(self, metric: str) -> bool:
        """Whether this run computes the opt-in ``metric`` (``metrics``, after the rules' implied ones are added)."""
        return metric in self.metrics

    def reference_metrics(self) -> tuple[str, ...]:
        """The opt-in metrics this run computes that compare with ground truth (LPIPS, FID): without any, a run
        that asks for them would compute nothing and say nothing, so the front-ends refuse it."""
        return tuple(metric for metric in self.metrics if BY_NAME[metric].needs_reference)

    def refuse_without_ground_truth(self, how: str) -> None:
        """Raise a :class:`ConfigError` when this run computes metrics that need ground truth: the caller found
        none for any video. ``how``: how its front-end is given ground truth."""
        needing = self.reference_metrics()
        if needing:
            labels = " and ".join(BY_NAME[metric].label for metric in needing)
            raise ConfigError(
                f"{labels} {'compares' if len(needing) == 1 else 'compare'} generated frames with ground truth, "
                "and no video has any",
                hint=f"{how}; or leave {' and '.join(needing)} out of metrics (and their thresholds)",
            )

    def with_metrics(self, names: Collection[str]) -> Settings:
        """These settings computing ``names`` too, ``metrics`` in the metric table's order, each once."""
        wanted = set(self.metrics) | set(names)
        return self.replace(metrics=tuple(name for name in OPT_IN if name in wanted))

    def _metric_settings(self) -> dict[str, Any]:
        """The per-video opt-in metrics and their variants, recorded only when one is on (so results, cache keys
        and baselines made without them stay comparable); FID is per dataset, recorded with its value."""
        per_video = [name for name in self.metrics if BY_NAME[name].level == "video"]
        if not per_video:
            return {}
        recorded: dict[str, Any] = {"metrics": per_video, "region": self.region}
        if "lpips" in per_video:
            recorded["lpips_net"] = self.lpips_net
        return recorded

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
                hint=f"Use detect_every <= {self.num_failed_det}, or raise num_failed_det to at least "
                f"{self.detect_every}",
            )


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"setting {key!r} is {value!r}", hint=f"Use one of: {', '.join(allowed)}")
