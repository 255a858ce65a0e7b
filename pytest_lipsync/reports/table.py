"""The plain-text table of scores printed by ``lipsync score`` and the pytest terminal summary.

PSNR and SSIM columns appear when any video was compared with ground truth. A row shows every metric the
video has, even when it failed: a broken ground truth fails the video but leaves its LSE numbers to read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_lipsync.display import display_name
from pytest_lipsync.results import RunRecord, VideoScore, WeightsRecord

_LSE_COLUMNS = ("LSE-D", "LSE-C", "offset")
_QUALITY_COLUMNS = ("PSNR", "SSIM")


def format_table(scores: Sequence[VideoScore]) -> str:
    with_quality = any(score.quality is not None for score in scores)
    header = ("video", *_LSE_COLUMNS, *(_QUALITY_COLUMNS if with_quality else ()), "frames", "seconds", "status")
    rows = [header, *(_row(score, with_quality) for score in scores)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(_align(cell, width, i, len(header)) for i, (cell, width) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _row(score: VideoScore, with_quality: bool) -> tuple[str, ...]:
    metrics = score.metrics
    quality = (_number(metrics.get("psnr"), 2), _number(metrics.get("ssim"), 4)) if with_quality else ()
    status = "ok" if score.error is None else display_name(f"{score.error.kind}: {score.error.message}")
    return (
        display_name(score.path),
        _number(metrics.get("lse_d")),
        _number(metrics.get("lse_c")),
        str(int(metrics["offset"])) if "offset" in metrics else "-",
        *quality,
        str(score.frames or "-"),
        f"{sum(score.timings.values()):.1f}",
        status,
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _align(cell: str, width: int, column: int, columns: int) -> str:
    return cell.ljust(width) if column in (0, columns - 1) else cell.rjust(width)


def custom_weights_notice(weights: Sequence[WeightsRecord]) -> str | None:
    """A line under every table scored with weights other than the released files: not paper numbers."""
    custom = [display_name(f"{w.name} {w.path} (SHA-256 {w.sha256[:12]}...)") for w in weights if w.custom]
    if not custom:
        return None
    return (
        f"note: scored with custom weights ({'; '.join(custom)}): these numbers are not comparable with "
        "published LSE-D/LSE-C, which use the released syncnet_v2.model and sfd_face.pth"
    )


def fast_options_notice(settings: Mapping[str, Any]) -> str | None:
    """A line under every table scored with a faster option (``precision``, ``detect_every``): it names each
    one, since a faster run's numbers are not the protocol's and must not pass for them."""
    from pytest_lipsync.settings import FAST_DEFAULTS

    used = [
        f"{key} = {settings[key]!r}" for key in FAST_DEFAULTS if key in settings and settings[key] != FAST_DEFAULTS[key]
    ]
    if not used:
        return None
    return (
        f"note: scored with faster options ({', '.join(used)}): these are not the protocol's numbers, not "
        "comparable with published LSE-D/LSE-C nor with runs made without these options"
    )


def run_notice(run: RunRecord) -> str | None:
    """Everything that makes a run's numbers other than the protocol's with the released weights, one line each."""
    lines = [line for line in (custom_weights_notice(run.weights), fast_options_notice(run.settings)) if line]
    return "\n".join(lines) or None
