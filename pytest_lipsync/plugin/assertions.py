"""Assertions for a user's own tests: ``assert_lse_d_below(video, 8.0)`` on a video the test just made.

They score through the running pytest session (models loaded once, results memoised and cached), take a
path or the ``lipsync_video`` fixture's value, and fail with the value, the limit and the margin. Every
frame here sets ``__tracebackhide__`` so the failure points at the user's line, not into this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.gate.rules import Check, format_verdict, judge
from pytest_lipsync.metrics import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig
    from pytest_lipsync.results import VideoScore
    from pytest_lipsync.session.run import GateSession, LipsyncVideo
    from pytest_lipsync.session.videos import VideoEntry


def assert_lse_d_below(video: str | Path | LipsyncVideo, limit: float) -> None:
    """LSE-D (lower is better) must be at most ``limit``."""
    __tracebackhide__ = True
    _assert_limit(video, "lse_d", limit, None)


def assert_lse_c_above(video: str | Path | LipsyncVideo, limit: float) -> None:
    """LSE-C (higher is better) must be at least ``limit``."""
    __tracebackhide__ = True
    _assert_limit(video, "lse_c", limit, None)


def assert_ssim_above(video: str | Path | LipsyncVideo, reference: str | Path, limit: float) -> None:
    """SSIM against ``reference`` must be at least ``limit``."""
    __tracebackhide__ = True
    _assert_limit(video, "ssim", limit, Path(reference))


def assert_psnr_above(video: str | Path | LipsyncVideo, reference: str | Path, limit: float) -> None:
    """PSNR (dB) against ``reference`` must be at least ``limit``."""
    __tracebackhide__ = True
    _assert_limit(video, "psnr", limit, Path(reference))


def assert_no_regression(video: str | Path | LipsyncVideo) -> None:
    """The video's LSE metrics must be within the configured regression rules of its baseline entry."""
    __tracebackhide__ = True
    session, config, entry = _resolve(video, None)
    if config.options.baseline is None:
        raise AssertionError(
            f'{entry.key}: no baseline to compare with: set baseline = "lipsync-baseline.json" in [tool.lipsync] '
            "(or --lipsync-baseline PATH) and create it with --lipsync-update-baseline"
        )
    score = session.score_entry(entry, config)
    verdict = judge(score, entry.key, config.gate.for_video(entry.key), baseline=session.baseline_values(entry.key))
    if verdict.outcome != "passed":
        raise AssertionError(format_verdict(verdict))


def _assert_limit(video: str | Path | LipsyncVideo, metric: str, limit: float, reference: Path | None) -> None:
    __tracebackhide__ = True
    score = _score(video, reference)
    if score.error is not None:
        raise AssertionError(f"{score.path} could not be scored: {score.error.kind}: {score.error.message}")
    check = Check(metric, score.metrics.get(metric, float("nan")), float(limit), "")
    if not check.passed:
        bound = "at least" if HIGHER_IS_BETTER[metric] else "at most"
        raise AssertionError(
            f"{score.path}: {metric} = {check.value:.4f}, expected {bound} {check.limit:.4f} "
            f"(margin {check.margin:+.4f})"
        )


def _score(video: str | Path | LipsyncVideo, reference: Path | None) -> VideoScore:
    __tracebackhide__ = True
    session, config, entry = _resolve(video, reference)
    return session.score_entry(entry, config)


def _resolve(video: str | Path | LipsyncVideo, reference: Path | None) -> tuple[GateSession, LipsyncConfig, VideoEntry]:
    """(session, configuration, entry) for ``video``; a reference given to the helper replaces the matched one."""
    __tracebackhide__ = True
    from pytest_lipsync.plugin.hooks import current_gate
    from pytest_lipsync.session.run import LipsyncVideo

    session = current_gate()
    if isinstance(video, LipsyncVideo):
        entry, config = video.entry, video.config
    else:
        entry, config = session.entry(Path(video)), session.config
    return session, config, entry if reference is None else entry.with_reference(reference)
