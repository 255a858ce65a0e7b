"""pytest-lipsync: LSE-D, LSE-C, AV offset, PSNR, SSIM (and on request LPIPS, CPBD, FID) for generated talking-head
video, as a pytest gate.

Importing this package is cheap (no torch, OpenCV or PyAV): pytest imports it for every run of every
project that has it installed. The heavy modules load when scoring starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_lipsync.errors import ConfigError, LipsyncError, VideoError, WeightsError
from pytest_lipsync.settings import Settings
from pytest_lipsync.version import __version__

if TYPE_CHECKING:
    from pytest_lipsync.plugin.assertions import (
        assert_cpbd_above,
        assert_fid_below,
        assert_lpips_below,
        assert_lse_c_above,
        assert_lse_d_below,
        assert_no_regression,
        assert_psnr_above,
        assert_ssim_above,
    )
    from pytest_lipsync.results import Report, ScoreError, TrackScore, VideoScore
    from pytest_lipsync.scoring.scorer import Scorer, score


__all__ = [
    "ConfigError",
    "LipsyncError",
    "Report",
    "ScoreError",
    "Scorer",
    "Settings",
    "TrackScore",
    "VideoError",
    "VideoScore",
    "WeightsError",
    "__version__",
    "assert_cpbd_above",
    "assert_fid_below",
    "assert_lpips_below",
    "assert_lse_c_above",
    "assert_lse_d_below",
    "assert_no_regression",
    "assert_psnr_above",
    "assert_ssim_above",
    "score",
]

_HELPERS = frozenset(name for name in __all__ if name.startswith("assert_"))
_RESULTS = frozenset({"Report", "ScoreError", "TrackScore", "VideoScore"})


def __getattr__(name: str) -> Any:
    """Load the scoring entry points (and with them torch), the result types and the helpers only when they
    are used: pytest imports this package for every run, and the plugin needs none of them to stay inert."""
    if name in ("Scorer", "score"):
        from pytest_lipsync.scoring import scorer

        return getattr(scorer, name)
    if name in _RESULTS:
        from pytest_lipsync import results

        return getattr(results, name)
    if name in _HELPERS:
        from pytest_lipsync.plugin import assertions

        return getattr(assertions, name)
    raise AttributeError(f"module 'pytest_lipsync' has no attribute {name!r}")
