"""``lipsync score --workers N``: a folder scored by N processes, each with its own device and models.

Processes are started with ``spawn`` (a forked child would inherit the parent's CUDA and thread pools) and
placed as pytest-xdist workers are (``placement``): one GPU each, or a share of the cores. Each creates its
:class:`Scorer` once and is handed one video at a time, so the fast ones take more. Results are put back in
the order of the videos, so the table and the JSON are those of a single process. A worker that dies (a
segfault in a decoder, the OOM killer) costs the video it held, which fails with ``worker_crashed``, and is
replaced; a set-up problem (weights, settings) stops the command as it would a single process. A worker
still busy with one video at twice its ``timeout`` (a hang in native code never reaches the cooperative
check, see ``deadline``) is killed and replaced, and the video fails with ``timeout``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pytest_lipsync.display import display_name
from pytest_lipsync.errors import ConfigError, LipsyncError, WorkerCrashedError
from pytest_lipsync.progress import ProgressDisplay, ProgressHook
from pytest_lipsync.results import RunRecord, ScoreError, VideoScore
from pytest_lipsync.scale.placement import apply, placement_for
from pytest_lipsync.settings import Settings

if TYPE_CHECKING:
    from pytest_lipsync.quality.pairing import ReferenceMatch
    from pytest_lipsync.scoring.entry import VideoEntry


_POLL_SECONDS = 0.5  # how often the parent looks for workers stuck past their time limit


class VideoScorer(Protocol):
    """What a worker needs of a :class:`~pytest_lipsync.scoring.scorer.Scorer` (tests pass stand-ins)."""

    @property
    def run(self) -> RunRecord: ...

    def score(
        self, path: str | Path, reference: ReferenceMatch | None = None, progress: ProgressHook | None = None
    ) -> VideoScore: ...


ScorerFactory = Callable[[Settings], VideoScorer]


class ResultSink(Protocol):
    """Where results go as they finish (``scale.stream`` appends them to a JSON Lines file): ``start`` once,
    with the run record, before the first ``put``; ``put`` in the order videos finish. ``sha256``: the file's
    hash when the process that scored it computed one (``None``: the sink hashes it itself)."""

    def start(self, run: RunRecord) -> None: ...

    def put(self, job: Job, result: VideoScore, sha256: str | None = None) -> None: ...


@dataclass(frozen=True)
class Job:
    """Video ``number`` (1-based, in output order): its key, file and ground truth, as listed by ``videos``."""

    number: int
    entry: VideoEntry

    @property
    def video(self) -> Path:
        return self.entry.path


@dataclass(frozen=True)
class Progress:
    """Progress lines on stderr, numbered over all videos whichever process scores them; ``display`` shows
    the stages of the video being scored (one process only: a pool's workers say when each video ends)."""

    total: int
    quiet: bool = False
    display: ProgressDisplay | None = None

    def started(self, job: Job, worker: int | None = None) -> None:
        where = "" if worker is None else f" (worker {worker + 1})"
        self._say(f"[{job.number}/{self.total}] {display_name(str(job.video))} ...{where}")

    def finished(self, job: Job, result: VideoScore, seconds: float) -> None:
        status = "ok" if result.error is None else f"failed ({result.error.kind})"
        self._say(f"[{job.number}/{self.total}] {display_name(str(job.video))} {status} in {seconds:.1f} s")

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)


def make_scorer(settings: Settings) -> VideoScorer:
    from pytest_lipsync.scoring.scorer import Scorer

    return Scorer(settings)


def score_jobs(
    jobs: Sequence[Job],
    settings: Settings,
    workers: int,
    progress: Progress,
    factory: ScorerFactory = make_scorer,
    sink: ResultSink | None = None,
) -> tuple[RunRecord, list[VideoScore]]:
    """Score ``jobs`` here (one worker) or in a pool; the results in job order, and the run record. Each
    result is also handed to ``sink`` as it finishes."""
    if workers <= 1 or len(jobs) <= 1:
        scorer = factory(settings)
        if sink is not None:
            sink.start(scorer.run)
        return scorer.run, [_timed(scorer, job, progress, sink) for job in jobs]
    return _Pool(settings, min(workers, len(jobs)), factory, sink).score(jobs, progress)


def _timed(scorer: VideoScorer, job: Job, progress: Progress, sink: ResultSink | None = None) -> VideoScore:
    started = time.perf_counter()
    progress.started(job)
    try:
        result = _score(scorer, job, progress.display)
    finally:
        if progress.display is not None:
            progress.display.close()
    progress.finished(job, result, time.perf_counter() - started)
    if sink is not None:
        sink.put(job, result)
    return result


def _score(scorer: VideoScorer, job: Job, display: ProgressHook | None = None) -> VideoScore:
    """The job's score against its ground truth, named by its key."""
    if display is None:
        return replace(scorer.score(job.video, job.entry.ground_truth), path=job.entry.key)
    return replace(scorer.score(job.video, job.entry.ground_truth, progress=display), path=job.entry.key)


def _serve(index: int, workers: int, settings: Settings, factory: ScorerFactory, conn: Connection) -> None:
    """A worker process: place itself before torch loads, make its scorer once, score what it is sent."""
    apply(placement_for(index, workers, settings.device, None, os.environ), os.environ)
    try:
        scorer = factory(settings)
    except LipsyncError as exc:
        conn.send(("setup", exc.message))
        return
    conn.send(("ready", scorer.run.to_dict()))
    while (job := conn.recv()) is not None:
        conn.send(("limit", video_limit(job.video, settings)))
        try:
            result = _score(scorer, job)
        except Exception as exc:  # a bug must cost its video, not the other workers' results
            result = _crashed(job, f"the worker scoring it raised {type(exc).__name__}: {exc}")
        conn.send(("done", result.to_dict()))


class _Worker:
    """One child process, its end of the pipe, and the job it holds."""

    def __init__(self, index: int, pool: _Pool) -> None:
        context = multiprocessing.get_context("spawn")
        self.index = index
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(index, pool.workers, pool.settings, pool.factory, child), daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.job: Job | None = None
        self.started = 0.0
        self.limit = 0.0

    def give(self, job: Job, limit: float, progress: Progress) -> None:
        self.job, self.started, self.limit = job, time.perf_counter(), limit
        self.conn.send(job)
        progress.started(job, self.index)

    def overdue(self, now: float) -> bool:
        """Busy for longer than twice the video's limit: the cooperative check had as long again to fire."""
        return self.job is not None and now - self.started > 2 * self.limit

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
        self.conn.close()


@dataclass(frozen=True)
class _Pool:
    settings: Settings
    workers: int
    factory: ScorerFactory
    sink: ResultSink | None = None

    def score(self, jobs: Sequence[Job], progress: Progress) -> tuple[RunRecord, list[VideoScore]]:
        pending = deque(jobs)
        results: dict[int, VideoScore] = {}
        run: RunRecord | None = None
        live = {worker.conn: worker for worker in (_Worker(index, self) for index in range(self.workers))}
        try:
            while len(results) < len(jobs):
                # wait() returns those of the objects it was given that are ready: here the workers' connections.
                ready = cast("list[Connection]", wait(list(live), timeout=_POLL_SECONDS))
                for conn in ready:
                    worker = live.pop(conn)
                    message = _receive(conn)
                    if message is None:  # died: its video failed; a new worker takes its place
                        self._lost(worker, results, progress)
                        self._replace(worker, live, pending)
                        continue
                    live[conn] = worker
                    if message[0] == "setup":
                        raise ConfigError(message[1])
                    if message[0] == "limit":
                        worker.limit = message[1]
                        continue
                    if message[0] == "ready":
                        if run is None and self.sink is not None:
                            self.sink.start(RunRecord.from_dict(message[1]))
                        worker.ready, run = True, run or RunRecord.from_dict(message[1])
                    else:
                        self._done(worker, VideoScore.from_dict(message[1]), results, progress)
                    if pending:
                        self._give(worker, pending.popleft(), progress)
                self._kill_overdue(live, pending, results, progress)
        finally:
            for worker in live.values():
                worker.stop()
        assert run is not None  # every result came from a worker that said it was ready
        return run, [results[job.number] for job in jobs]

    def _give(self, worker: _Worker, job: Job, progress: Progress) -> None:
        """Until the worker has read the video's header (its ``limit`` message), the limit of a video without one."""
        from pytest_lipsync.limits import video_timeout

        worker.give(job, video_timeout(self.settings.timeout, None), progress)

    def _replace(self, worker: _Worker, live: dict[Connection, _Worker], pending: deque[Job]) -> None:
        if pending:
            fresh = _Worker(worker.index, self)
            live[fresh.conn] = fresh

    def _kill_overdue(
        self, live: dict[Connection, _Worker], pending: deque[Job], results: dict[int, VideoScore], progress: Progress
    ) -> None:
        """Kill the workers stuck on a video past twice its limit; the video fails with ``timeout``."""
        from pytest_lipsync.limits import timeout_error

        now = time.perf_counter()
        for conn, worker in list(live.items()):
            if worker.overdue(now):
                assert worker.job is not None  # only a busy worker is overdue
                del live[conn]
                worker.process.kill()
                worker.stop()
                error = timeout_error(worker.job.video, now - worker.started, worker.limit, killed=True)
                timed_out = VideoScore(worker.job.entry.key, error=ScoreError.from_error(error))
                self._done(worker, timed_out, results, progress)
                self._replace(worker, live, pending)

    def _done(self, worker: _Worker, result: VideoScore, results: dict[int, VideoScore], progress: Progress) -> None:
        job, worker.job = worker.job, None
        assert job is not None  # a worker answers only what it was given
        results[job.number] = result
        progress.finished(job, result, time.perf_counter() - worker.started)
        if self.sink is not None:
            self.sink.put(job, result)

    def _lost(self, worker: _Worker, results: dict[int, VideoScore], progress: Progress) -> None:
        worker.stop()
        why = f"the worker process scoring it died (exit code {worker.process.exitcode})"
        if not worker.ready:
            raise ConfigError(
                f"a scoring worker process died while loading the models (exit code {worker.process.exitcode})",
                hint="Run lipsync doctor, or score with --workers 1 to see the failure",
            )
        if worker.job is not None:
            self._done(worker, _crashed(worker.job, why), results, progress)


def video_limit(video: Path, settings: Settings) -> float:
    """The video's time limit, read in the worker: opening a hostile header may crash, and only a worker may.
    A header that cannot be read gets the limit of one without a duration (scoring then reports why)."""
    from pytest_lipsync.errors import VideoError
    from pytest_lipsync.limits import video_timeout
    from pytest_lipsync.media.decode import open_video

    if settings.timeout is not None:
        return settings.timeout
    try:
        return open_video(video, settings.limits).deadline.limit
    except VideoError:
        return video_timeout(None, None)


def _receive(conn: Connection) -> tuple[Any, ...] | None:
    """The worker's next message; ``None`` when it died."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _crashed(job: Job, why: str) -> VideoScore:
    error = WorkerCrashedError(
        why,
        path=job.video,
        hint="Score it alone (lipsync score FILE) to see the failure; the other videos are unaffected",
    )
    return VideoScore(path=job.entry.key, error=ScoreError.from_error(error))
