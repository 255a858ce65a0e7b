"""``lipsync score --executor ray``: a dataset scored by long-lived Ray actors, on one machine or a cluster.

The semantics are those of the local pool (:mod:`pytest_lipsync.scale.workers`), spread over machines:

* **Actors, not tasks.** Loading SyncNet and S3FD costs seconds and hundreds of MB; a task per video would
  pay it per video. Each actor makes its :class:`Scorer` once, with the driver's settings (the same weights
  resolution, so the same numbers as a local run), and is handed one video at a time. There is one actor
  per GPU when the cluster has GPUs and the device allows one (``auto``/``cuda``: Ray pins the actor with
  ``CUDA_VISIBLE_DEVICES``), with a share of the cores for decoding and tracking; else one per
  ``cpus_per_actor`` cores.
* **Back-pressure.** An actor holds one video at a time, so at most one video per actor is in flight and the
  fast actors take more. Actors open the files themselves (the paths must be visible to them: a shared
  filesystem, mounted at the same path; actors work from the driver's working directory), so no frame
  passes through the driver, and each result goes to the sink (the JSONL file)
  the moment it arrives: the driver holds neither frames nor all the results.
* **Faults.** An actor that dies (a crash in native code, the OOM killer, a lost node) is replaced; the
  video it held is tried once more on a fresh actor and, if that one dies too, fails with
  ``worker_crashed``. A Python exception inside scoring costs its video only (as in a local worker). A video
  still running at twice its time limit (a hang in native code never reaches the cooperative check) gets
  its actor killed and replaced, and fails with ``timeout``; it is not retried. An actor that cannot load
  the models stops the command, as a local run would.

Ray is an optional dependency (``pip install "pytest-lipsync[ray]"``): nothing imports it until this
executor runs, and without it the command is a usage error that says how to get it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_lipsync.errors import ConfigError, LipsyncError
from pytest_lipsync.results import RunRecord, ScoreError, VideoScore
from pytest_lipsync.scale.placement import Placement, apply, pins_device
from pytest_lipsync.scale.workers import (
    Job,
    Progress,
    ResultSink,
    ScorerFactory,
    VideoScorer,
    _crashed,
    _score,
    make_scorer,
    video_limit,
)
from pytest_lipsync.settings import Settings

INSTALL_HINT = 'pip install "pytest-lipsync[ray]" (or pip install "ray>=2.9")'
# Four threads is where one S3FD/SyncNet forward pass stops gaining much from more cores; more actors with
# fewer threads each score more videos per hour, at the cost of one copy of the models per actor.
DEFAULT_CPUS_PER_ACTOR = 4
_POLL_SECONDS = 0.5  # how often the driver looks for actors stuck past their time limit
_ATTEMPTS = 2  # a video whose actor died is tried on a fresh actor once more


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` of a running cluster (``None``: Ray's own choice, usually a new local
    instance, or ``RAY_ADDRESS``), cores per CPU actor (``None``: :data:`DEFAULT_CPUS_PER_ACTOR`, at most
    the cluster's), and a cap on the number of actors (``None``: as many as the resources allow)."""

    address: str | None = None
    cpus_per_actor: float | None = None
    max_actors: int | None = None


def import_ray() -> Any:
    """The ``ray`` module, or a usage error saying how to install it."""
    try:
        import ray  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class ActorShape:
    """How many actors and the resources each asks Ray for."""

    count: int
    num_cpus: float
    num_gpus: float


def actor_shape(resources: dict[str, float], device: str, options: RayOptions, videos: int) -> ActorShape:
    """One actor per GPU when the device lets the actor's GPU be chosen for it; else a share of the cores."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    per_actor = min(options.cpus_per_actor or DEFAULT_CPUS_PER_ACTOR, max(cpus, 1.0))
    if gpus >= 1 and pins_device(device):
        # A GPU actor still decodes, cuts scenes, tracks and computes MFCCs on its CPUs: it gets a share.
        count, shape = gpus, (max(1.0, min(per_actor, cpus // gpus)), 1.0)
    else:
        count, shape = max(1, int(cpus // per_actor)), (per_actor, 0.0)
    count = min(count, videos, options.max_actors or count)
    return ActorShape(max(1, count), *shape)


class ScoringActor:
    """The body of one Ray actor: a scorer made once, then videos one at a time (``limit`` then ``score``)."""

    def __init__(self, settings: Settings, factory: ScorerFactory, threads: int | None, cwd: str) -> None:
        # Ray sets OMP_NUM_THREADS to the actor's CPUs; apply() keeps it and sets torch's pool to match.
        apply(Placement(threads=threads), os.environ)
        # Paths are opened as the driver wrote them, from its working directory (the same path on a shared
        # filesystem), so relative ones resolve alike and messages name files as a local run names them.
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.settings = settings
        self.scorer: VideoScorer | None = None
        self.setup_error: str | None = None
        try:
            self.scorer = factory(settings)
        except LipsyncError as exc:
            self.setup_error = exc.message

    def ready(self) -> tuple[str, Any]:
        if self.scorer is None:
            return ("setup", self.setup_error)
        return ("ready", self.scorer.run.to_dict())

    def limit(self, job: Job) -> float:
        """The video's time limit, read here: opening a hostile header may crash, and only an actor may."""
        return video_limit(job.video, self.settings)

    def score(self, job: Job) -> tuple[dict[str, Any], str | None]:
        """The result (as JSON data: small and version-independent to ship) and the file's SHA-256, read here
        where the file is, so the driver never reads the videos."""
        from pytest_lipsync.scale.stream import file_sha256

        assert self.scorer is not None  # the driver sends videos only to actors that said they are ready
        sha = file_sha256(job.video)
        try:
            result = _score(self.scorer, job)
        except Exception as exc:  # a bug must cost its video, not the other actors' results
            result = _crashed(job, f"the actor scoring it raised {type(exc).__name__}: {exc}")
        return result.to_dict(), sha


class _Slot:
    """One actor and the video it holds: ``ready`` until it has loaded the models, then ``limit``/``score``."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.ready_ref: Any = handle.ready.remote()
        self.job: Job | None = None
        self.limit_ref: Any = None
        self.score_ref: Any = None
        self.started: float | None = None  # when the video was sent, then when the actor began it
        self.limit = 0.0

    def refs(self) -> list[Any]:
        return [ref for ref in (self.ready_ref, self.limit_ref, self.score_ref) if ref is not None]


def score_on_ray(
    jobs: Sequence[Job],
    settings: Settings,
    progress: Progress,
    sink: ResultSink,
    options: RayOptions = RayOptions(),
    factory: ScorerFactory = make_scorer,
) -> RunRecord:
    """Score ``jobs`` on Ray actors, handing each result to ``sink`` as it finishes; the run record.

    Uses the Ray instance this process is connected to, else connects to (or starts) one with
    ``options.address`` and shuts it down afterwards."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    try:
        return _Driver(ray, jobs, settings, progress, sink, options, factory).run()
    finally:
        if started_here:
            ray.shutdown()


class _Driver:
    def __init__(
        self,
        ray: Any,
        jobs: Sequence[Job],
        settings: Settings,
        progress: Progress,
        sink: ResultSink,
        options: RayOptions,
        factory: ScorerFactory,
    ) -> None:
        self.ray, self.settings, self.progress, self.sink, self.factory = ray, settings, progress, sink, factory
        self.pending: deque[Job] = deque(jobs)
        self.total = len(jobs)
        self.done = 0
        self.attempts: dict[int, int] = {}
        self.shape = actor_shape(ray.cluster_resources(), settings.device, options, len(jobs))
        self.actor_class = ray.remote(ScoringActor).options(
            num_cpus=self.shape.num_cpus, num_gpus=self.shape.num_gpus, max_restarts=0, max_concurrency=1
        )
        self.run_record: RunRecord | None = None

    def _start(self, index: int) -> _Slot:
        threads = max(1, int(self.shape.num_cpus))
        return _Slot(index, self.actor_class.remote(self.settings, self.factory, threads, os.getcwd()))

    def run(self) -> RunRecord:
        from ray.exceptions import RayError  # type: ignore[import-not-found,unused-ignore]

        slots = {index: self._start(index) for index in range(self.shape.count)}
        try:
            while self.done < self.total:
                owners = {ref: slot for slot in slots.values() for ref in slot.refs()}
                ready = self.ray.wait(list(owners), num_returns=1, timeout=_POLL_SECONDS)[0] if owners else []
                for ref in ready:
                    slot = owners[ref]
                    try:
                        value = self.ray.get(ref)
                    except RayError as exc:
                        self._lost(slot, slots, exc)
                        continue
                    self._answer(slot, ref, value)
                self._kill_overdue(slots)
        finally:
            for slot in slots.values():
                self.ray.kill(slot.handle, no_restart=True)
        assert self.run_record is not None  # every result came from an actor that said it was ready
        return self.run_record

    def _answer(self, slot: _Slot, ref: Any, value: Any) -> None:
        if slot.ready_ref is not None and ref == slot.ready_ref:
            slot.ready_ref = None
            kind, payload = value
            if kind == "setup":
                raise ConfigError(payload)
            if self.run_record is None:
                self.run_record = RunRecord.from_dict(payload)
                self.sink.start(self.run_record)
            self._give(slot)
        elif slot.limit_ref is not None and ref == slot.limit_ref:
            slot.limit_ref, slot.limit, slot.started = None, float(value), time.perf_counter()
        else:
            result, sha = value
            slot.score_ref = None
            self._finish(slot, VideoScore.from_dict(result), sha)
            self._give(slot)

    def _give(self, slot: _Slot) -> None:
        if not self.pending:
            return
        from pytest_lipsync.limits import video_timeout

        job = self.pending.popleft()
        # Until the actor has read the header (its limit arrives), the limit of a video without a duration.
        slot.job, slot.started, slot.limit = job, time.perf_counter(), video_timeout(self.settings.timeout, None)
        slot.limit_ref = slot.handle.limit.remote(job)
        slot.score_ref = slot.handle.score.remote(job)  # an actor runs its calls in order: after the limit
        self.progress.started(job, slot.index)

    def _finish(self, slot: _Slot, result: VideoScore, sha: str | None) -> None:
        job, slot.job = slot.job, None
        assert job is not None
        seconds = 0.0 if slot.started is None else time.perf_counter() - slot.started
        self.progress.finished(job, result, seconds)
        self.sink.put(job, result, sha)
        self.done += 1

    def _lost(self, slot: _Slot, slots: dict[int, _Slot], exc: Exception) -> None:
        """The actor died: replace it; its video is tried again once, then fails with ``worker_crashed``."""
        del slots[slot.index]
        self.ray.kill(slot.handle, no_restart=True)
        if slot.ready_ref is not None and self.run_record is None:
            raise ConfigError(
                f"a Ray scoring actor died while loading the models ({type(exc).__name__})",
                hint="Run lipsync doctor on a node of the cluster, or score with --executor local to see the failure",
            )
        job = slot.job
        if job is not None:
            self.attempts[job.number] = self.attempts.get(job.number, 0) + 1
            if self.attempts[job.number] < _ATTEMPTS:
                self.pending.appendleft(job)
            else:
                why = f"the Ray actor scoring it died, twice ({type(exc).__name__})"
                self._finish(slot, _crashed(job, why), None)
        if self.pending:
            slots[slot.index] = self._start(slot.index)

    def _kill_overdue(self, slots: dict[int, _Slot]) -> None:
        """Kill the actors busy with one video past twice its limit; the video fails with ``timeout``."""
        from pytest_lipsync.limits import timeout_error

        now = time.perf_counter()
        for slot in list(slots.values()):
            if slot.job is None or slot.started is None or now - slot.started <= 2 * slot.limit:
                continue
            del slots[slot.index]
            self.ray.kill(slot.handle, no_restart=True)
            error = timeout_error(slot.job.video, now - slot.started, slot.limit, killed=True)
            self._finish(
                slot, VideoScore(slot.job.entry.key, error=ScoreError(error.kind, error.message, error.facts)), None
            )
            if self.pending:
                slots[slot.index] = self._start(slot.index)
