"""The plain-text table of scores printed by ``lipsync score`` and the pytest terminal summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_lipsync.results import VideoScore

_HEADER = ("video", "LSE-D", "LSE-C", "offset", "frames", "seconds", "status")


def format_table(scores: Sequence[VideoScore]) -> str:
    rows = [_HEADER, *(_row(score) for score in scores)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(_align(cell, width, i) for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _row(score: VideoScore) -> tuple[str, ...]:
    seconds = f"{sum(score.timings.values()):.1f}"
    if score.error is not None:
        return (score.path, "-", "-", "-", str(score.frames or "-"), seconds, f"{score.error.kind}: {score.error.message}")
    metrics = score.metrics
    return (
        score.path,
        _number(metrics.get("lse_d")),
        _number(metrics.get("lse_c")),
        str(int(metrics["offset"])) if "offset" in metrics else "-",
        str(score.frames),
        seconds,
        "ok",
    )


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _align(cell: str, width: int, column: int) -> str:
    return cell.ljust(width) if column in (0, len(_HEADER) - 1) else cell.rjust(width)
