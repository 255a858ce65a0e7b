"""Assertions for a user's own tests: ``assert_lse_d_below(video, 8.0)`` on a video the test just made.

They score through the running pytest session (models loaded once, results memoised and cached), take a
path or the ``lipsync_video`` fixture's value, and fail with the value, the limit and the margin. Every
frame here sets ``__tracebackhide__`` so the failure points at the user's line, not into this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.display import plural
from pytest_lipsync.gate.rules import Check, format_verdict, judge
from pytest_lipsync.metrics import HIGHER_IS_BETTER, OPT_IN

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig
    from pytest_lipsync.results import VideoScore
    from pytest_lipsync.scoring.entry import VideoEntry
    from pytest_lipsync.session.run import GateSession, LipsyncVideo


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


def assert_lpips_below(video: str | Path | LipsyncVideo, reference: str | Path, limit: float) -> None:
    """LPIPS (lower is better) against ``reference`` must be at most ``limit``; turns LPIPS on for this video."""
    __tracebackhide__ = True
    _assert_limit(video, "lpips", limit, Path(reference))


def assert_cpbd_above(video: str | Path | LipsyncVideo, limit: float) -> None:
    """CPBD (sharpness, higher is better, no ground truth needed) must be at least ``limit``; turns CPBD on for this
    video."""
    __tracebackhide__ = True
    _assert_limit(video, "cpbd", limit, None)


def assert_fid_below(limit: float, pairs: Sequence[tuple[str | Path, str | Path]] | None = None) -> None:
    """FID (lower is better) must be at most ``limit``: of the session's videos that have ground truth (the
    ``lipsync::fid`` item's number, computed once), or of ``pairs`` of (generated video, ground truth) files."""
    __tracebackhide__ = True
    from pytest_lipsync.plugin.hooks import current_gate

    session = current_gate()
    if pairs is None:
        value = float(session.dataset_value("fid"))
        what = f"FID of the {plural(sum(e.reference is not None for e in session.videos), 'video')} with ground truth"
    else:
        from pytest_lipsync.scoring.dataset import dataset_fid

        files = [(Path(video), Path(reference)) for video, reference in pairs]
        value = dataset_fid(files, session.config.settings.with_metrics(["fid"])).value
        what = f"FID of {plural(len(files), 'pair')}"
    check = Check("fid", value, float(limit), "")
    if not check.passed:
        raise AssertionError(
            f"{what} = {check.value:.4f}, expected at most {check.limit:.4f} (margin {check.margin:+.4f})"
        )


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
    score = _score(video, reference, metric)
    if score.error is not None:
        raise AssertionError(f"{score.path} could not be scored: {score.error.kind}: {score.error.message}")
    check = Check(metric, score.metrics.get(metric, float("nan")), float(limit), "")
    if not check.passed:
        bound = "at least" if HIGHER_IS_BETTER[metric] else "at most"
        raise AssertionError(
            f"{score.path}: {metric} = {check.value:.4f}, expected {bound} {check.limit:.4f} "
            f"(margin {check.margin:+.4f})"
        )


def _score(video: str | Path | LipsyncVideo, reference: Path | None, metric: str | None = None) -> VideoScore:
    __tracebackhide__ = True
    session, config, entry = _resolve(video, reference, metric)
    return session.score_entry(entry, config)


def _resolve(
    video: str | Path | LipsyncVideo, reference: Path | None, metric: str | None = None
) -> tuple[GateSession, LipsyncConfig, VideoEntry]:
    """(session, configuration, entry) for ``video``; a reference given to the helper replaces the matched one, and
    an opt-in ``metric`` the helper checks is turned on."""
    __tracebackhide__ = True
    from pytest_lipsync.plugin.hooks import current_gate
    from pytest_lipsync.session.run import LipsyncVideo

    session = current_gate()
    if isinstance(video, LipsyncVideo):
        entry, config = video.entry, video.config
    else:
        entry, config = session.entry(Path(video)), session.config
    if metric in OPT_IN and not config.settings.computes(metric):  # the helper asks for it: compute it
        config = replace(config, settings=config.settings.with_metrics([metric]))
    return session, config, entry if reference is None else entry.with_reference(reference)
