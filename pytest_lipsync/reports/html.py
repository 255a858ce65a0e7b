"""The HTML report (``lipsync report``, ``--lipsync-html``): one page a CI user opens to see why a video failed.

What it is: ``DIR/index.html``, one file that works on its own when moved, mailed or opened from a downloaded
CI artifact, offline: inline CSS and JS, plots inlined as PNG ``data:`` URIs, nothing from the network. The
one exception is annotated videos: a video's section shows its annotated copy when ``DIR/videos/<its
path>.mp4`` exists (:func:`annotated_path`, written by ``lipsync visualize VIDEO -o ...``), referenced
relatively, never inlined (a whole clip is megabytes, a third more as base64, and a page holding it opens
slowly); the page names that file, and says so where it cannot be played (not beside the page, or a browser
without H.264). Annotating re-scores the video, too slow to do for every report. So the report is the page,
plus its ``videos/`` folder when there is one.

Every value from a report (paths, error messages, settings) is escaped, since video names and messages are
arbitrary text, and made valid Unicode, since a file name need not be UTF-8. The page is written atomically:
a reader sees the previous page or the new one, never half of one.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_lipsync.display import display_name, plural
from pytest_lipsync.metrics import LABELS, METRICS, formatted
from pytest_lipsync.reports.confidence import band_for
from pytest_lipsync.reports.plots import Plot, PlotsUnavailable, load_pyplot, video_plots
from pytest_lipsync.reports.table import run_notice
from pytest_lipsync.results import Report, TrackScore, VideoScore, write_text_atomic

if TYPE_CHECKING:
    from pytest_lipsync.gate.rules import GateRules

INDEX = "index.html"
VIDEOS = "videos"
# A baseline's metrics by video key: the summary shows each metric's change from it.
BaselineMetrics = Mapping[str, Mapping[str, float]]
# The metric table's per-video metrics as summary columns: (label, metric, digits, opt-in); None digits: an integer.
_COLUMNS: tuple[tuple[str, str, int | None, bool], ...] = tuple(
    (m.label, m.name, m.digits or None, m.opt_in) for m in METRICS if m.level == "video"
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; }
td small { color: #666; }
#summary th { cursor: pointer; background: #f0f0f0; user-select: none; }
#summary th::after { content: " \\2195"; color: #999; }
tr.failed td { background: #fde8e8; }
td.status.ok { color: #176b2c; }
pre.error { background: #fde8e8; border-left: 4px solid #c62828; padding: 0.6em; white-space: pre-wrap; }
p.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 0.6em; }
section { border-top: 1px solid #ddd; margin-top: 1.5em; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
video { max-width: 100%; background: #000; }
code { word-break: break-all; }
"""

# Click a header to sort by it (numbers by value, "-" last); click again to reverse.
_SCRIPT = """
document.querySelectorAll('#summary th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], up = th.dataset.order !== 'up';
    th.dataset.order = up ? 'up' : 'down';
    Array.from(body.rows).sort(function (a, b) {
      var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
      var nx = parseFloat(x), ny = parseFloat(y), order;
      if (!isNaN(nx) && !isNaN(ny)) { order = nx - ny; }
      else if (isNaN(nx) !== isNaN(ny)) { return isNaN(nx) ? 1 : -1; }
      else { order = x.localeCompare(y); }
      return up ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
// An annotated video is a file beside the page: say so where it cannot be played (missing, or no decoder).
document.querySelectorAll('video').forEach(function (video) {
  function unplayable() { video.parentNode.querySelector('.unplayable').hidden = false; }
  if (video.error) { unplayable(); } else { video.addEventListener('error', unplayable); }
});
"""


def write_report(
    report: Report, directory: Path, baseline: BaselineMetrics | None = None, rules: GateRules | None = None
) -> Path:
    """Write ``directory/index.html``, plots inlined; returns the page's path.

    ``rules``: the gate's, whose ``lse_c_min`` places each video's confidence threshold band (``reports.confidence``).
    """
    videos = sorted(report.videos, key=lambda video: (video.ok, video.path))
    plots, note = _all_plots(videos, rules)
    body = [
        "<h1>pytest-lipsync report</h1>",
        _summary(videos, baseline or {}),
        *filter(None, [_dataset(report)]),
        *(_section(number, video, plots.get(number, []), directory) for number, video in enumerate(videos, 1)),
        _run(report),
    ]
    for line in (note, run_notice(report.run)):
        if line:
            body.insert(1, f'<p class="note">{_escape(line)}</p>')
    page = directory / INDEX
    write_text_atomic(page, _page("\n".join(body)))
    return page


def annotated_path(directory: Path, video: str) -> Path:
    """Where the report looks for a video's annotated copy: ``videos/`` + its path as recorded, as MP4."""
    relative = Path(video).relative_to(Path(video).anchor) if Path(video).is_absolute() else Path(video)
    return directory / VIDEOS / relative.with_suffix(".mp4")


def _all_plots(videos: Iterable[VideoScore], rules: GateRules | None) -> tuple[dict[int, list[Plot]], str | None]:
    """Each video's plots by its number, or none and the message saying how to get them."""
    try:
        load_pyplot()
    except PlotsUnavailable as missing:
        return {}, str(missing)
    return {
        number: video_plots(video, f"video-{number:03d}", band_for(rules, video.path))
        for number, video in enumerate(videos, 1)
    }, None


def _escape(text: str) -> str:
    """Escaped for HTML, and valid Unicode: paths and messages come from file systems (see ``display_name``)."""
    return escape(display_name(text))


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>pytest-lipsync report</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _summary(videos: Iterable[VideoScore], baseline: BaselineMetrics) -> str:
    """The sortable table, failing rows first; each row links to its video's section. An opt-in metric's column
    is there when a video has it."""
    listed = list(videos)
    present = {metric for video in listed for metric in video.metrics}
    columns = {label: (name, digits) for label, name, digits, opt_in in _COLUMNS if not opt_in or name in present}
    header = "".join(f"<th>{_escape(name)}</th>" for name in ("video", *columns, "status"))
    rows = "\n".join(
        _summary_row(number, video, baseline.get(video.path, {}), columns) for number, video in enumerate(listed, 1)
    )
    note = "<p>In brackets: the change since the baseline.</p>\n" if baseline else ""
    return (
        f'<h2>Summary</h2>\n{note}<table id="summary">\n'
        f"<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    )


def _summary_row(
    number: int, video: VideoScore, before: Mapping[str, float], columns: Mapping[str, tuple[str, int | None]]
) -> str:
    name = f'<td data-sort="{_escape(video.path)}"><a href="#video-{number}">{_escape(video.path)}</a></td>'
    cells = "".join(
        _number_cell(video.metrics.get(metric), digits, before.get(metric)) for metric, digits in columns.values()
    )
    status = "ok" if video.error is None else video.error.kind
    state = "ok" if video.ok else "failed"
    return (
        f'<tr class="{state}">{name}{cells}'
        f'<td class="status {state}" data-sort="{_escape(status)}">{_escape(status)}</td></tr>'
    )


def _number_cell(value: float | None, digits: int | None, before: float | None = None) -> str:
    """A metric, and its change since the baseline when there is a baseline value."""
    if value is None or not math.isfinite(value):
        return '<td class="num" data-sort="-">-</td>'
    text = _format(value, digits)
    if before is not None and math.isfinite(before):
        text += f" <small>({'+' if value >= before else '-'}{_format(abs(value - before), digits)})</small>"
    return f'<td class="num" data-sort="{value!r}">{text}</td>'


def _format(value: float, digits: int | None) -> str:
    return str(int(value)) if digits is None else f"{value:.{digits}f}"


def _section(number: int, video: VideoScore, plots: list[Plot], directory: Path) -> str:
    """A video's error, tracks, annotated copy (when there is one) and plots."""
    parts = [f'<section id="video-{number}">', f"<h2>{_escape(video.path)}</h2>"]
    if video.error is not None:
        parts.append(f'<pre class="error">{_escape(video.error.kind)}: {_escape(video.error.message)}</pre>')
    parts.append(f"<p>{video.frames} frames, {video.duration:.2f} s, {len(video.tracks)} face track(s)</p>")
    annotated = annotated_path(directory, video.path)
    if annotated.is_file():
        relative = annotated.relative_to(directory).as_posix()
        link, name = _escape(quote(os.fsencode(relative))), _escape(relative)
        parts.append(
            f'<div class="annotated"><video controls preload="metadata" src="{link}" width="480"></video>\n'
            f'<p><a href="{link}">Annotated video</a>: face tracks boxed by per-frame confidence. '
            f"It is a separate file, <code>{name}</code> beside this page: keep the two together.</p>\n"
            f'<p class="note unplayable" hidden>This browser cannot play <code>{name}</code>: the file is not '
            "beside this page, or the browser has no H.264 decoder.</p></div>"
        )
    if video.tracks:
        parts.append(_tracks(video.tracks))
    parts += [
        f'<figure id="{_escape(plot.name)}"><img src="{_data_uri(plot.png)}" alt="{_escape(plot.caption)}">'
        f"<figcaption>{_escape(plot.caption)}</figcaption></figure>"
        for plot in plots
    ]
    parts.append("</section>")
    return "\n".join(parts)


def _data_uri(png: bytes) -> str:
    """The PNG inline: base64 has no character that needs escaping in an attribute."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _tracks(tracks: Iterable[TrackScore]) -> str:
    header = "".join(
        f"<th>{name}</th>" for name in ("track", "frames", "windows", "LSE-D", "LSE-C", "offset", "mean box")
    )
    rows = "".join(
        f"<tr><td>{number}</td><td>{track.start_frame}-{track.end_frame}</td><td>{track.windows}</td>"
        f"{_number_cell(track.lse_d, 3)}{_number_cell(track.lse_c, 3)}"
        f"<td>{track.offset}</td><td>{_box(track)}</td></tr>"
        for number, track in enumerate(tracks, 1)
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"


def _box(track: TrackScore) -> str:
    boxes = track.boxes
    return (
        "-" if boxes is None else f"{boxes.mean_width:.0f}x{boxes.mean_height:.0f} px ({boxes.detections} detections)"
    )


def _dataset(report: Report) -> str | None:
    """The per-dataset metrics (FID): one number each over every video of the run with ground truth."""
    sections = report.dataset or {}
    cells = [
        f"{_escape(formatted(metric, float(section['value'])))} ({section['generated_frames']} generated frames of "
        f"{plural(section['videos'], 'video')} against {section['reference_frames']} ground-truth frames)"
        for metric, section in sections.items()
        if metric in LABELS and isinstance(section, Mapping) and isinstance(section.get("value"), (int, float))
    ]
    return f'<p id="dataset">Over the whole dataset: {"; ".join(cells)}</p>' if cells else None


def _run(report: Report) -> str:
    """Where the numbers came from: tool version, device, settings and weights hashes (to compare runs)."""
    run = report.run
    facts = {
        "tool version": run.tool_version,
        "device": run.device,
        **({"shard": report.shard} if report.shard else {}),
    }
    weights = "".join(
        f"<tr><td>{_escape(w.name)}</td><td><code>{_escape(w.sha256)}</code></td><td>{_escape(w.path)}</td>"
        f"<td>{'custom' if w.custom else 'released'}</td></tr>"
        for w in run.weights
    )
    return (
        '<section id="run">\n<h2>Run</h2>\n'
        f"{_pairs(facts)}\n<h3>Settings</h3>\n{_pairs(run.settings)}\n<h3>Weights</h3>\n"
        f"<table><thead><tr><th>name</th><th>SHA-256</th><th>path</th><th></th></tr></thead><tbody>{weights}</tbody></table>\n"
        "</section>"
    )


def _pairs(values: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_escape(str(key))}</td><td>{_escape(str(value))}</td></tr>" for key, value in values.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"
