from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from pytest_lipsync.synthetic.clips import ClipSpec, write_clip
from pytest_lipsync.synthetic.weights import standin_syncnet_file

if TYPE_CHECKING:
    from pytest_lipsync.scoring.scorer import Scorer
    from pytest_lipsync.settings import Fidelity
    from pytest_lipsync.settings import Protocol as ScoringProtocol

DATA = Path(__file__).parent / "data"


class MakeClip(Protocol):
    """The ``make_clip`` fixture: the path of the session's clip ``name``, written from ``spec`` the first time."""

    def __call__(self, name: str, spec: ClipSpec = ...) -> Path: ...


class Scorers(Protocol):
    """The ``scorers`` fixture: the session's Scorer for a fidelity and protocol (stand-in SyncNet, CPU)."""

    def __call__(self, fidelity: Fidelity = ..., protocol: ScoringProtocol = ...) -> Scorer: ...


class PipelineScorers(Protocol):
    """The ``pipeline_scorer`` fixture: the session's pipeline-protocol Scorer for these settings changes."""

    def __call__(self, **changes: object) -> Scorer: ...


class PytesterProject(Protocol):
    """The plugin tests' ``project`` fixture: writes the pytester project (``extra`` pyproject TOML appended,
    the broken clip left out unless ``broken``) and returns its root."""

    def __call__(self, extra: str = ..., *, broken: bool = ...) -> Path: ...


class ScoreCommand(Protocol):
    """The ``score`` fixture: ``lipsync score`` run in-process with these arguments; returns its exit status."""

    def __call__(self, *arguments: str) -> int: ...


@pytest.fixture(scope="session")
def syncnet_weights() -> Path:
    """Stand-in SyncNet weights (fixed seed) in the released file format."""
    return standin_syncnet_file()


@pytest.fixture(scope="session")
def s3fd_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in S3FD weights (fixed seed) in the released file format."""
    import torch

    from pytest_lipsync.synthetic.faces import standin_s3fd_state_dict

    path = tmp_path_factory.mktemp("s3fd") / "standin_sfd_face.pth"
    torch.save(standin_s3fd_state_dict(), path)
    return path


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path) -> MakeClip:
    """Write (once per session) the clip for ``spec`` under ``name``."""

    def make(name: str, spec: ClipSpec = ClipSpec()) -> Path:
        path = clip_dir / name
        if not path.exists():
            write_clip(path, spec)
        return path

    return make


@pytest.fixture(scope="session")
def scorers(syncnet_weights: Path) -> Scorers:
    """One Scorer per settings combination, shared by the whole session (models load once)."""
    from pytest_lipsync import Settings
    from pytest_lipsync.scoring.scorer import Scorer

    made: dict[tuple[str, str], Scorer] = {}

    def get(fidelity: Fidelity = "clean", protocol: ScoringProtocol = "cropped") -> Scorer:
        key = (fidelity, protocol)
        if key not in made:
            made[key] = Scorer(
                Settings(
                    protocol=protocol,
                    fidelity=fidelity,
                    device="cpu",
                    syncnet_weights=str(syncnet_weights),
                    offline=True,
                )
            )
        return made[key]

    return get


@pytest.fixture
def quality_trees(make_clip: MakeClip, tmp_path: Path) -> tuple[Path, Path]:
    """``out/talks/a.avi``, a degraded copy (MPEG-4 Part 2) of ``gt/talks/a.mkv`` (x264, crf 12), and
    ``out/talks/orphan.avi``, which has no ground truth."""
    spec = ClipSpec(seconds=1.0, width=96, height=72)
    truth, degraded = make_clip("truth.mkv", spec), make_clip("degraded.avi", spec)
    out, gt = tmp_path / "out", tmp_path / "gt"
    (out / "talks").mkdir(parents=True)
    (gt / "talks").mkdir(parents=True)
    (out / "talks" / "a.avi").write_bytes(degraded.read_bytes())
    (out / "talks" / "orphan.avi").write_bytes(degraded.read_bytes())
    (gt / "talks" / "a.mkv").write_bytes(truth.read_bytes())
    return out, gt


@pytest.fixture
def make_fifo(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Make named pipes that no reader can hang on: a thread writes a few bytes into each, closes it, and does so
    again for the next reader, so code that wrongly opens one reads garbage and the end of the file instead of
    waiting forever for a writer. Teardown stops the writers, freeing any still waiting for a reader."""
    made: list[tuple[Path, threading.Thread]] = []
    stop = threading.Event()

    def feed(path: Path) -> None:
        while not stop.is_set():
            with contextlib.suppress(BrokenPipeError):  # a reader that stops early
                path.write_bytes(b"not a file" * 100)  # opening blocks until a reader comes

    def make(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path)
        writer = threading.Thread(target=feed, args=(path,), daemon=True)
        writer.start()
        made.append((path, writer))
        return path

    yield make
    stop.set()
    for path, writer in made:
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a writer waiting in open() gets its reader
        writer.join()
        os.close(reader)


def registered_flags() -> dict[str, dict[str, object]]:
    """The ``--lipsync-*`` flags the plugin registers, with their ``addoption`` keywords, without a pytest run."""
    from pytest_lipsync.plugin.hooks import pytest_addoption

    flags: dict[str, dict[str, object]] = {}

    class Group:
        def addoption(self, flag: str, **options: object) -> None:
            flags[flag] = options

    class Parser:
        def getgroup(self, *names: str) -> Group:
            return Group()

    pytest_addoption(Parser())  # type: ignore[arg-type]  # a stand-in Parser with what pytest_addoption calls
    return flags
