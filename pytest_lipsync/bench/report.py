"""The benchmark document as Markdown tables (readable in a terminal, pasteable into docs/benchmarks.md).

Columns: ``s`` seconds; ``fps`` 25 fps video frames per second; ``RTF`` real-time factor, seconds per second
of video (below 1: faster than real time); ``share`` of the run's wall time; ``peak RSS`` the run's own
process (VmHWM); ``bare`` the S3FD and SyncNet forward passes alone on the same work; ``overhead`` end to end
(without quality) over bare; ``speed-up`` (without quality) and ``Δ`` against the baseline variant on the same
clip and protocol.

Frame metrics (LPIPS, FID, CPBD), per clip: ``ms/frame`` of the package's computation, of its ``bare`` part
(the network's forward pass, or CPBD's library calls) and of the ``peer`` script's loop, all on the same frames;
``ratio`` package over bare; ``vs peer`` the peer's time over the package's; ``agreement`` the largest
difference of the two results relative to the largest value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def format_report(document: dict[str, Any]) -> str:
    parts = [_header(document)]
    if document["runs"] or not document["frame_metrics"]:
        parts.append(summary_table(document["runs"], document["notice"] is not None))
    parts += [stage_table(run) for run in document["runs"]]
    if document["s3fd_batching"]:
        parts.append(batching_table(document["s3fd_batching"]))
    if document["memory"]:
        parts.append(memory_table(document["memory"]))
    if document["frame_metrics"]:
        parts.append(frame_metrics_table(document["frame_metrics"]))
    parts += [f"**Failed**: {failure}" for failure in document["failed"]]
    return "\n\n".join(parts) + "\n"


def _header(document: dict[str, Any]) -> str:
    machine = document["machine"]
    runs = document["runs"] or document["frame_metrics"]
    torch = f"torch {runs[0]['torch']}, {runs[0]['threads']} threads" if runs else "torch"
    weights = "stand-in weights" if document["weights"]["standin"] else "released weights"
    lines = [
        f"Machine: {machine['processor']}, {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
        f"{torch}; device {machine['device']}; {weights}.",
    ]
    if "load_average" in machine:
        before, after = machine["load_average"]
        lines.append(f"Load average (1 min) {before:.1f} before, {after:.1f} after: on a shared machine every other "
                     "process competes for the cores and adds to every time.")  # fmt: skip
    if document["notice"]:
        lines.insert(0, f"**{document['notice'].upper()}**: LSE values with these weights mean nothing; score changes "
                        "are the numerical effect of an option only.")  # fmt: skip
    return "\n".join(lines)


def summary_table(runs: Sequence[dict[str, Any]], standin: bool) -> str:
    change = "Δ (stand-in, numerical only)" if standin else "Δ LSE-D / LSE-C / offset"
    header = ["clip", "protocol", "variant", "frames", "wall s", "fps", "RTF", "peak RSS MiB", "bare s", "overhead",
              "speed-up", change]  # fmt: skip
    rows = []
    for run in runs:
        versus = run.get("vs_baseline", {})
        rows.append([
            run["clip"]["name"], run["protocol"], run["variant"], str(run["frames"]), _num(run["wall"]),
            _num(run["fps"]), _num(run["rtf"], 3), _num(run["peak_rss_mib"], 0), _num(run["bare"]["total"]),
            _times(run["overhead_ratio"]), _times(versus.get("speedup")), _changes(versus) if versus else "",
        ])  # fmt: skip
    errors = [
        f"- {run['clip']['name']} {run['protocol']} {run['variant']}: {run['error']}" for run in runs if run["error"]
    ]
    return "\n".join([table(header, rows), *errors])


def stage_table(run: dict[str, Any]) -> str:
    title = f"{run['clip']['name']}, {run['protocol']}, {run['variant']}: {run['frames']} frames"
    rows = [
        [row["stage"], _num(row["seconds"]), _num(row["fps"]), _num(row["rtf"], 3), _percent(row["share"])]
        for row in run["stages"]
    ]
    rows.append(["total", _num(run["wall"]), _num(run["fps"]), _num(run["rtf"], 3), "100%"])
    bare = run["bare"]
    footer = (
        f"peak RSS {_num(run['peak_rss_mib'], 0)} MiB; bare S3FD {_num(bare['s3fd'])} s "
        f"({bare['s3fd_calls_timed']} of {bare['s3fd_calls']} calls timed), bare SyncNet {_num(bare['syncnet'])} s "
        f"({run['windows']} windows); overhead {_times(run['overhead_ratio'])}"
    )
    return "\n".join([f"{title}", "", table(["stage", "s", "fps", "RTF", "share"], rows), "", footer])


def batching_table(rows: Iterable[dict[str, Any]]) -> str:
    body = [
        [
            f"{row['width']}x{row['height']}",
            str(row["frames"]),
            str(row["batch"]),
            _num(row["batched_fps"]),
            _num(row["single_fps"]),
            _times(row["speedup"]),
        ]
        for row in rows
    ]
    return "S3FD fp32, batched against one frame per call\n\n" + table(
        ["frame size", "frames", "batch", "batched fps", "single fps", "speed-up"], body
    )


def memory_table(rows: Iterable[dict[str, Any]]) -> str:
    body = [
        [
            f"{row['width']}x{row['height']}",
            str(row["faces"]),
            row["protocol"],
            row["variant"],
            f"{row['short_seconds']:g} s: {row['short_peak_rss_mib']:.0f}",
            f"{row['long_seconds']:g} s: {row['long_peak_rss_mib']:.0f}",
            _times(row["ratio"]),
        ]
        for row in rows
    ]
    return "Peak RSS (MiB) against clip length\n\n" + table(
        ["frame size", "faces", "protocol", "variant", "short", "long", "long / short"], body
    )


def frame_metrics_table(rows: Iterable[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        per_frame = 1000 / row["frames"]
        peer = row["peer"]
        extra = f"; Fréchet distance {row['frechet_seconds']:.1f} s" if "frechet_seconds" in row else ""
        body.append([
            row["clip"], row["metric"], f"{row['width']}x{row['height']}", str(row["frames"]),
            _num(row["seconds"] * per_frame, 1), _num(row["bare"] * per_frame, 1), _times(row["ratio"]),
            "-" if peer is None else _num(peer * per_frame, 1), _times(row["vs_peer"]),
            "-" if row["agreement"] is None else f"{row['agreement']:.1e}{extra}",
        ])  # fmt: skip
    header = ["clip", "metric", "frame size", "frames", "ms/frame", "bare ms/frame", "ratio", "peer ms/frame",
              "vs peer", "agreement"]  # fmt: skip
    return "Frame metrics (networks with stand-in weights: timings only)\n\n" + table(header, body)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join("| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |" for line in lines)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _changes(versus: dict[str, float]) -> str:
    return " / ".join(
        f"{versus[key]:+.3f}" for key in ("lse_d_change", "lse_c_change", "offset_change") if key in versus
    )
