"""The gate's test items: one per video for lip sync, one more per video for PSNR/SSIM with ground truth.

Items are named after the video (``out/talk_01.mp4::lipsync``) so that ``-k`` selects by path and a CI log
names the file; a name's bytes that are not UTF-8 are spelt ``\\xff`` there, as pytest writes node ids to
UTF-8 files. A failing item shows the verdict's table and no Python traceback: the traceback would point
into this plugin, and the user's question is which number missed which limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lipsync.config.keys import MARKER
from pytest_lipsync.display import display_name
from pytest_lipsync.errors import LipsyncError
from pytest_lipsync.gate.rules import Verdict, format_verdict
from pytest_lipsync.metrics import DATASET_METRICS, LABELS, QUALITY_METRICS, SYNC_METRICS

if TYPE_CHECKING:
    from pytest_lipsync.scoring.entry import VideoEntry
    from pytest_lipsync.session.run import GateSession
    from pytest_lipsync.session.videos import Unmatched


class GateFailed(Exception):
    """An item's verdict was a failure: carries the verdict for :meth:`VideoItem.repr_failure`."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class VideoNode(pytest.Collector):
    """The parent of one video's items; named by the video's key. Its items are made by the plugin."""

    def collect(self) -> list[Any]:
        return []


class JudgedItem(pytest.Item):
    """An item whose outcome is a gate verdict: it fails with the verdict's table (or a configuration error's
    message, naming ``subject``), never a traceback into the plugin."""

    subject = ""

    def __init__(self, *, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.add_marker(MARKER)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, pytest.xfail.Exception):
            # pytest asks for a failure's text before it turns the report into an xfail, and never shows it:
            # formatting the traceback cost ~20x a failed item. The reason is all there is to say.
            return str(excinfo.value)
        if isinstance(excinfo.value, GateFailed):
            return format_verdict(excinfo.value.verdict)
        if isinstance(excinfo.value, LipsyncError):
            return display_name(f"{self.subject}: {excinfo.value.message}")
        return str(super().repr_failure(excinfo, style))


class VideoItem(JudgedItem):
    """Checks one video's lip-sync metrics (LSE-D, LSE-C, and CPBD when on) against thresholds and the baseline."""

    metrics: Sequence[str] = SYNC_METRICS
    item_name = "lipsync"

    def __init__(self, *, entry: VideoEntry, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(gate=gate, **kwargs)
        self.entry = entry
        self.subject = entry.key

    def runtest(self) -> None:
        verdict = self.gate.verdict(self.entry, self.metrics)
        self.user_properties.extend(_properties(self.gate, self.entry.key, verdict))
        if verdict.outcome == "xfailed":
            pytest.xfail(display_name(verdict.reason))
        if verdict.outcome == "failed":
            raise GateFailed(verdict)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """The failure headline. Not the node id itself: pytest would turn its dots into ``::``."""
        return display_name(str(self.entry.path)), None, f"{display_name(self.entry.key)} ({self.name})"


class QualityItem(VideoItem):
    """Checks one video's PSNR/SSIM against its ground truth (``psnr_min``, ``ssim_min``, regression)."""

    metrics = QUALITY_METRICS
    item_name = "quality"


class DatasetItem(JudgedItem):
    """Judges a metric of the whole run's dataset (FID) against its threshold: ``lipsync::fid``, which ``-k fid``
    selects. It computes the metric from the files alone, so it gives the same verdict on any xdist worker."""

    def __init__(self, *, metric: str, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(gate=gate, **kwargs)
        self.metric = metric
        self.subject = self.nodeid

    def runtest(self) -> None:
        verdict = self.gate.dataset_verdict(self.metric)
        value = self.gate.dataset[self.metric].get("value")
        if value is not None:
            self.user_properties.append((f"lipsync_{self.metric}", round(value, 6)))
        self.user_properties.append(("lipsync_verdict", verdict.outcome))
        if verdict.outcome == "failed":
            raise GateFailed(verdict)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.nodeid, None, f"{LABELS[self.metric]} of the dataset ({self.nodeid})"


class NoVideos(Exception):
    """A configured folder or glob holds no video (the message says which and why)."""


class NoVideosItem(pytest.Item):
    """Fails for a configured folder or glob that holds no video: a gate that checked nothing must not pass
    (unless ``allow_no_videos`` says that it may)."""

    def __init__(self, *, unmatched: Unmatched, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unmatched = unmatched
        self.add_marker(MARKER)

    def runtest(self) -> None:
        raise NoVideos(
            f"{self.unmatched.message}. Generate the videos first, fix the videos setting, or set "
            "allow_no_videos = true in [tool.lipsync] to accept a run without them"
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, NoVideos):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.unmatched.argument, None, f"{self.unmatched.key} ({self.name})"


def make_items(session: pytest.Session, gate: GateSession) -> list[pytest.Item]:
    """One item per video (two with a reference configured), in key order, one failing item per configured
    folder or glob that holds no video, and a run-level item per dataset metric that is on (``lipsync::fid``).
    Node ids show the key as :func:`display_name` does: pytest prints them at the start of a line."""
    items: list[pytest.Item] = []
    for unmatched in gate.unmatched:
        node = VideoNode.from_parent(session, name=unmatched.key, nodeid=unmatched.key, path=unmatched.argument)
        items.append(NoVideosItem.from_parent(node, name="lipsync", unmatched=unmatched))
    for entry in gate.videos:
        name = display_name(entry.key)
        node = VideoNode.from_parent(session, name=name, nodeid=name, path=entry.path)
        items.append(VideoItem.from_parent(node, name=VideoItem.item_name, entry=entry, gate=gate))
        if gate.with_quality:
            items.append(QualityItem.from_parent(node, name=QualityItem.item_name, entry=entry, gate=gate))
    dataset = [name for name in DATASET_METRICS if gate.config.settings.computes(name)]
    if dataset:
        node = VideoNode.from_parent(session, name="lipsync", nodeid="lipsync")
        items += [DatasetItem.from_parent(node, name=name, metric=name, gate=gate) for name in dataset]
    if gate.with_quality and session.config.pluginmanager.hasplugin("xdist"):
        for item in items:  # with --dist loadgroup, one worker scores a video once for both items
            if isinstance(item, VideoItem):
                item.add_marker(pytest.mark.xdist_group(item.entry.key))
    return items


def video_of(nodeid: str, gate: GateSession) -> str | None:
    """The key of the video whose gate item ``nodeid`` is (items are ``<key>::lipsync`` and ``<key>::quality``)."""
    node, _, name = nodeid.rpartition("::")
    if name not in (VideoItem.item_name, QualityItem.item_name):
        return None
    return next((entry.key for entry in gate.videos if display_name(entry.key) == node), None)


def report_collected(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Tell the terminal (``collected N items``) about items made outside file collection."""
    for parent in dict.fromkeys(item.parent for item in items):
        assert parent is not None  # only the session has no parent, and it is no item
        children: list[pytest.Item | pytest.Collector] = [item for item in items if item.parent is parent]
        config.hook.pytest_collectreport(report=pytest.CollectReport(parent.nodeid, "passed", None, children))


def _properties(gate: GateSession, key: str, verdict: Verdict) -> list[tuple[str, object]]:
    """JUnit ``<property>`` pairs: the video, its finite metrics, and the verdict."""
    score = gate.scores.get(key)
    metrics = {} if score is None else score.metrics
    pairs: list[tuple[str, object]] = [("lipsync_video", key)]
    pairs += [(f"lipsync_{name}", round(value, 6)) for name, value in metrics.items() if math.isfinite(value)]
    return [*pairs, ("lipsync_verdict", verdict.outcome)]
