"""The gate's test items: one per video for lip sync, one more per video for PSNR/SSIM with ground truth.

Items are named after the video (``out/talk_01.mp4::lipsync``) so that ``-k`` selects by path and a CI log
names the file. A failing item shows the verdict's table and no Python traceback: the traceback would point
into this plugin, and the user's question is which number missed which limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lipsync.display import display_name
from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.gate import QUALITY_METRICS, SYNC_METRICS, Verdict, format_verdict
from pytest_lipsync.plugin import MARKER

if TYPE_CHECKING:
    from pytest_lipsync.session import GateSession, VideoEntry



class GateFailed(Exception):
    """An item's verdict was a failure: carries the verdict for :meth:`VideoItem.repr_failure`."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class VideoNode(pytest.Collector):
    """The parent of one video's items; named by the video's key. Its items are made by the plugin."""

    def collect(self) -> list[Any]:
        return []


class VideoItem(pytest.Item):
    """Checks one video's lip-sync metrics (LSE-D, LSE-C) against thresholds and the baseline."""

    metrics: Sequence[str] = SYNC_METRICS

    def __init__(self, *, entry: VideoEntry, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry
        self.gate = gate
        self.add_marker(MARKER)

    def runtest(self) -> None:
        verdict = self.gate.verdict(self.entry, self.metrics)
        self.user_properties.extend(_properties(self.gate, self.entry.key, verdict))
        if verdict.outcome == "xfailed":
            pytest.xfail(display_name(verdict.reason))
        if verdict.outcome == "failed":
            raise GateFailed(verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, pytest.xfail.Exception):
            # pytest asks for a failure's text before it turns the report into an xfail, and never shows it:
            # formatting the traceback cost ~20x a failed item. The reason is all there is to say.
            return str(excinfo.value)
        if isinstance(excinfo.value, GateFailed):
            return format_verdict(excinfo.value.verdict)
        if isinstance(excinfo.value, LipsyncError):
            return display_name(f"{self.entry.key}: {excinfo.value.message}")
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """The failure headline. Not the node id itself: pytest would turn its dots into ``::``."""
        return display_name(str(self.entry.path)), None, f"{display_name(self.entry.key)} ({self.name})"


class QualityItem(VideoItem):
    """Checks one video's PSNR/SSIM against its ground truth (``psnr_min``, ``ssim_min``, regression)."""

    metrics = QUALITY_METRICS


def make_items(session: pytest.Session, gate: GateSession) -> list[pytest.Item]:
    """One item per video (two with a reference configured), in key order. Node ids show the key as
    :func:`display_name` does: pytest prints them at the start of a line."""
    items: list[pytest.Item] = []
    for entry in gate.videos:
        shown = display_name(entry.key)
        node = VideoNode.from_parent(session, name=shown, nodeid=shown, path=entry.path)
        items.append(VideoItem.from_parent(node, name="lipsync", entry=entry, gate=gate))
        if gate.with_quality:
            items.append(QualityItem.from_parent(node, name="quality", entry=entry, gate=gate))
    if gate.with_quality and session.config.pluginmanager.hasplugin("xdist"):
        for item in items:  # with --dist loadgroup, one worker scores a video once for both items
            item.add_marker(pytest.mark.xdist_group(item.entry.key))  # type: ignore[attr-defined]
    return items


def report_collected(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Tell the terminal (``collected N items``) about items made outside file collection."""
    for parent in dict.fromkeys(item.parent for item in items):
        children = [item for item in items if item.parent is parent]
        config.hook.pytest_collectreport(report=pytest.CollectReport(parent.nodeid, "passed", None, children))


def _properties(gate: GateSession, key: str, verdict: Verdict) -> list[tuple[str, object]]:
    """JUnit ``<property>`` pairs: the video, its finite metrics, and the verdict."""
    score = gate.scores.get(key)
    metrics = {} if score is None else score.metrics
    pairs: list[tuple[str, object]] = [("lipsync_video", key)]
    pairs += [(f"lipsync_{name}", round(value, 6)) for name, value in metrics.items() if math.isfinite(value)]
    return [*pairs, ("lipsync_verdict", verdict.outcome)]
