"""PNG plots of one video's scores, for the HTML report: where sync holds, how sure SyncNet is, which frames
differ most from ground truth.

Plots are rendered in memory, never written as files: the report inlines them (``data:`` URIs), so that the
page is one file that still shows them when it is moved, mailed or opened from a downloaded artifact.

matplotlib is an optional extra (``pytest-lipsync[report]``): it is imported here only, lazily, with the
``Agg`` backend (CI has no display), and its absence is :class:`PlotsUnavailable` so that the report is
still written, without plots, saying how to get them.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_lipsync.metrics import HIGHER_IS_BETTER, LABELS, METRICS
from pytest_lipsync.reports.confidence import AMBER, WINDOW_CENTRE, ConfidenceBand, rgb
from pytest_lipsync.results import TrackScore, VideoScore

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = 'pip install "pytest-lipsync[report]"'
MISSING_MESSAGE = f"Plots need matplotlib, which is not installed: {INSTALL_HINT}"
DIFFERENCE_GAIN = 4  # a difference of 64 levels shows at full scale


class PlotsUnavailable(Exception):
    """matplotlib cannot be imported; the message says how to install it."""


@dataclass(frozen=True)
class Plot:
    """A rendered plot: its name (unique in a report, the figure's anchor), what it shows, and the PNG file's
    bytes."""

    name: str
    caption: str
    png: bytes


def load_pyplot() -> Any:
    """``matplotlib.pyplot`` on the ``Agg`` backend, imported on first use so that the plugin stays light."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise PlotsUnavailable(MISSING_MESSAGE) from None
    return pyplot


def video_plots(video: VideoScore, stem: str, band: ConfidenceBand = ConfidenceBand()) -> list[Plot]:
    """Every plot ``video`` has data for, named ``stem-*``; ``band``: the confidence threshold band
    (:mod:`.confidence`) shaded on the confidence plot."""
    pyplot = load_pyplot()
    plots = []
    tracks = [track for track in video.tracks if track.frame_confidence]
    if tracks:
        plots.append(
            _save(
                pyplot,
                _confidence_figure(pyplot, tracks, video.frames, band),
                f"{stem}-confidence",
                f"Smoothed per-frame confidence of each face track; shaded: the threshold band ({band.label})",
            )
        )
    for number, track in enumerate(video.tracks, 1):
        if track.mean_dist:
            plots.append(
                _save(
                    pyplot,
                    _distance_figure(pyplot, track, number),
                    f"{stem}-distance-{number}",
                    f"Track {number}: mean distance against offset (minimum = LSE-D, median - minimum = LSE-C)",
                )
            )
    series = _quality_series(video.quality)
    if series:
        plots.append(
            _save(
                pyplot,
                _quality_figure(pyplot, series),
                f"{stem}-quality",
                f"Per-frame {_and(LABELS[name] for name in series)}, worst frame marked",
            )
        )
    reference = (video.quality or {}).get("reference")
    for frame, metrics in _worst_frames(series).items():
        pair = None if reference is None else _frame_pair(Path(video.path), Path(reference), frame)
        if pair is not None:
            plots.append(
                _save(
                    pyplot,
                    _worst_figure(pyplot, *pair, frame),
                    f"{stem}-worst-{frame}",
                    f"Frame {frame}, the worst by {metrics}: generated, ground truth, difference (x{DIFFERENCE_GAIN})",
                )
            )
    return plots


def _worst_frames(series: Mapping[str, Mapping[str, Any]]) -> dict[int, str]:
    """The worst video frame of each metric, and which metrics it is the worst of ("PSNR and SSIM")."""
    frames: dict[int, list[str]] = {}
    for name, data in series.items():
        frame = (data.get("worst") or {}).get("frame")
        if frame is not None:
            frames.setdefault(int(frame), []).append(LABELS[name])
    return {frame: _and(names) for frame, names in sorted(frames.items())}


def _and(names: Iterable[str]) -> str:
    """ "PSNR, SSIM and LPIPS"."""
    listed = list(names)
    return ", ".join(listed[:-1]) + " and " + listed[-1] if len(listed) > 1 else "".join(listed)


def _frame_pair(generated: Path, reference: Path, frame: int) -> tuple[Any, Any] | None:
    """Frame ``frame`` (25 fps, as quality numbers them) of both videos in RGB, the reference at the generated
    size as quality compares it; None when either cannot be read from here (a report moved to another machine).

    Only regular files are opened: a path in a report may name a FIFO or a device, where opening blocks or
    reads forever, and a report is no reason to wait."""
    import cv2

    from pytest_lipsync.errors import VideoError
    from pytest_lipsync.media.decode import open_video

    if not (generated.is_file() and reference.is_file()):
        return None
    try:
        first, second = [
            next(islice(open_video(path).decoded("rgb24"), frame, None), None) for path in (generated, reference)
        ]
    except VideoError:
        return None
    if first is None or second is None:
        return None
    ours: np.ndarray = first.to_ndarray()
    theirs: np.ndarray = second.to_ndarray()
    if theirs.shape != ours.shape:
        theirs = cv2.resize(theirs, (ours.shape[1], ours.shape[0]), interpolation=cv2.INTER_AREA)
    return ours, theirs


def _worst_figure(pyplot: Any, generated: Any, reference: Any, frame: int) -> Any:
    """Side by side; the difference is the largest channel's absolute difference, amplified to be seen."""
    import numpy as np

    difference = np.abs(generated.astype(np.int16) - reference.astype(np.int16)).max(axis=2)
    figure, panels = pyplot.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
    for axes, image, title in zip(panels, (generated, reference), ("generated", "ground truth")):
        axes.imshow(image)
        axes.set_title(f"{title}, frame {frame}")
    shown = panels[2].imshow(np.clip(difference * DIFFERENCE_GAIN, 0, 255), cmap="magma", vmin=0, vmax=255)
    panels[2].set_title(f"|difference| x {DIFFERENCE_GAIN}")
    figure.colorbar(shown, ax=panels[2], fraction=0.046)
    for axes in panels:
        axes.set_axis_off()
    return figure


def _save(pyplot: Any, figure: Any, name: str, caption: str) -> Plot:
    """Render ``figure`` as PNG and close it: open figures would pile up over a large dataset."""
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    pyplot.close(figure)
    return Plot(name, caption, png.getvalue())


def _confidence_figure(pyplot: Any, tracks: Sequence[TrackScore], frames: int, band: ConfidenceBand) -> Any:
    """The x axis spans the whole video (when its length is known), so that frames without a track show as gaps;
    each frame is plotted at the centre of its window, as ``lipsync visualize`` colours it."""
    figure, axes = pyplot.subplots(figsize=(10, 3), layout="constrained")
    axes.axhspan(band.low, band.high, color=rgb(AMBER), alpha=0.25, label=f"threshold band: {band.label}")
    axes.axhline(band.threshold, color=rgb(AMBER), linewidth=1)
    for number, track in enumerate(tracks, 1):
        first = track.start_frame + WINDOW_CENTRE
        span = range(first, first + len(track.frame_confidence))
        axes.plot(span, track.frame_confidence, label=f"track {number} (frames {track.start_frame}-{track.end_frame})")
    if frames:
        axes.set_xlim(0, frames - 1)
    axes.set(xlabel="frame", ylabel="confidence", title="Per-frame confidence")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside: the curves stay visible
    return figure


def _distance_figure(pyplot: Any, track: TrackScore, number: int) -> Any:
    """The curve, its minimum (LSE-D at the chosen offset) and its median: the gap is LSE-C."""
    shift = len(track.mean_dist) // 2
    offsets = list(range(-shift, len(track.mean_dist) - shift))
    finite = [value for value in track.mean_dist if math.isfinite(value)]
    figure, axes = pyplot.subplots(figsize=(6, 3), layout="constrained")
    axes.plot(offsets, track.mean_dist, marker=".", color="tab:blue")
    if finite:
        lowest, median = min(finite), statistics.median(finite)
        at = offsets[track.mean_dist.index(lowest)]
        axes.axhline(median, color="tab:gray", linestyle="--", label=f"median {median:.3f}")
        axes.annotate("", xy=(at, lowest), xytext=(at, median), arrowprops={"arrowstyle": "<->", "color": "tab:green"})
        axes.plot([at], [lowest], "o", color="tab:red", label=f"min (LSE-D) {lowest:.3f} at offset {at}")
        axes.plot([], [], color="tab:green", label=f"LSE-C {median - lowest:.3f}")
        axes.legend(loc="best", fontsize="small")
    axes.set(xlabel="offset (frames)", ylabel="mean distance", title=f"Track {number}")
    axes.grid(alpha=0.3)
    return figure


def _quality_series(quality: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The metrics of ``quality`` that have a per-frame series (none when the pair could not be compared): PSNR,
    SSIM and the opt-in LPIPS and CPBD, in the metric table's order."""
    if not quality:
        return {}
    return {
        metric.name: quality[metric.name]
        for metric in METRICS
        if metric.regional and isinstance(quality.get(metric.name), Mapping) and quality[metric.name].get("per_frame")
    }


def _quality_figure(pyplot: Any, series: Mapping[str, Mapping[str, Any]]) -> Any:
    """One panel per metric; the worst value is marked where it is in the series and labelled with its frame."""
    figure, panels = pyplot.subplots(
        len(series), 1, figsize=(8, 2.2 * len(series)), sharex=True, layout="constrained", squeeze=False
    )
    for axes, (name, data) in zip(panels[:, 0], series.items()):
        values = [math.nan if value is None else value for value in data["per_frame"]]
        axes.plot(range(len(values)), values, color="tab:blue")
        worst = data.get("worst") or {}
        if worst.get("value") is not None:
            sign = 1 if HIGHER_IS_BETTER[name] else -1  # the worst LPIPS is the highest
            index = min(range(len(values)), key=lambda i: sign * values[i] if math.isfinite(values[i]) else math.inf)
            axes.plot(
                [index],
                [values[index]],
                "o",
                color="tab:red",
                label=f"worst {worst['value']:.4g} (frame {worst.get('frame')})",
            )
            axes.legend(loc="best", fontsize="small")
        axes.set(ylabel=LABELS[name])
        axes.grid(alpha=0.3)
    panels[-1, 0].set(xlabel="compared frame")
    return figure
