"""The frame quality variants and alignment tolerances, validated once.

Published tables disagree on which SSIM they mean, so every variant is a named value that travels into
each result; the defaults are the ones docs/protocol.md fixes (scikit-image's defaults on RGB frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pytest_lipsync.bounds import Range, check_bounds, setting
from pytest_lipsync.errors import ConfigError

SsimWindow = Literal["uniform7", "gaussian11"]
Color = Literal["rgb", "y"]
Region = Literal["frame", "face"]
# LPIPS's feature network: AlexNet (the ``lpips`` package's default) or VGG16.
LpipsNet = Literal["alex", "vgg"]

SSIM_WINDOWS: tuple[str, ...] = get_args(SsimWindow)
COLORS: tuple[str, ...] = get_args(Color)
REGIONS: tuple[str, ...] = get_args(Region)
LPIPS_NETS: tuple[str, ...] = get_args(LpipsNet)
# `lipsync score` takes them, in its ground-truth group; `lipsync visualize` compares nothing with ground truth.
_SCORE = ("score",)
_GROUP = "quality"


@dataclass(frozen=True)
class QualitySettings:
    """How generated frames are compared with their ground truth.

    ``ssim_window``: ``"uniform7"`` is scikit-image's default (7x7 mean filter, sample covariance);
    ``"gaussian11"`` is Wang et al. 2004 (11x11 Gaussian, sigma 1.5, population covariance).
    ``color``: ``"rgb"`` averages the three channels; ``"y"`` compares BT.601 luma (see ``color.py``).
    ``region``: ``"frame"`` compares whole frames; ``"face"`` the face crops of the pipeline's tracks, where a
    lip-sync edit happens (a full-frame PSNR is dominated by untouched background).
    ``resize_reference``: resize ground truth of another size to the generated size instead of failing.
    ``max_length_mismatch``: how many frames the two videos may differ by (the common prefix is compared).
    """

    ssim_window: SsimWindow = setting(
        "uniform7",
        "SSIM variant: `uniform7` is scikit-image's default, `gaussian11` Wang et al.'s 11x11 Gaussian",
        commands=_SCORE,
        group=_GROUP,
    )
    color: Color = setting("rgb", "PSNR/SSIM on RGB, or on BT.601 luma (`y`)", commands=_SCORE, group=_GROUP)
    region: Region = setting(
        "frame", "PSNR/SSIM over whole frames, or inside the face tracks", commands=_SCORE, group=_GROUP
    )
    resize_reference: bool = setting(
        False,
        "resize ground truth of another size to the generated size (area interpolation) instead of failing",
        commands=_SCORE,
        group=_GROUP,
    )
    max_length_mismatch: int = setting(
        2,
        "frames by which a video and its ground truth may differ in length (the common prefix is compared)",
        Range(0, integer=True),
        commands=_SCORE,
        group=_GROUP,
        metavar="FRAMES",
    )

    def __post_init__(self) -> None:
        _check_choice("ssim_window", self.ssim_window, SSIM_WINDOWS)
        _check_choice("color", self.color, COLORS)
        _check_choice("region", self.region, REGIONS)
        if not isinstance(self.resize_reference, bool):
            raise ConfigError(f"resize_reference must be true or false, not {self.resize_reference!r}")
        check_bounds(self)


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        options = ", ".join(f'"{choice}"' for choice in choices)
        raise ConfigError(f"{key} must be one of {options}, not {value!r}")
