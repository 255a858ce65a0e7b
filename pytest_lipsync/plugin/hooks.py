"""pytest hooks and fixtures of pytest-lipsync, and nothing else: the logic lives in ``session``,
``config``, ``gate``, ``items`` and ``reports``.

pytest imports this module for every run of every project that has the package installed, so it imports
no torch, OpenCV or PyAV, and does nothing unless a ``--lipsync-*`` flag is given, the rootdir's
``pyproject.toml`` has a ``[tool.lipsync]`` table, or a test uses a lipsync fixture or helper.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lipsync.config.keys import MARKER, flat_keys, read_table
from pytest_lipsync.config.table import add_flags
from pytest_lipsync.display import display_name
from pytest_lipsync.errors import LipsyncError

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import Layer
    from pytest_lipsync.progress import ProgressDisplay
    from pytest_lipsync.reports.outcome import Outputs
    from pytest_lipsync.session.run import GateSession, LipsyncVideo

GATE = pytest.StashKey["GateSession"]()
ACTIVE = pytest.StashKey[bool]()
OUTPUTS = pytest.StashKey["Outputs"]()
_CONFIGS: list[pytest.Config] = []  # innermost last: pytester runs sessions inside sessions
# The attribute of a test report that carries an xdist worker's new results to the controller: pytest sends
# a report's extra attributes along with it.
RESULTS = "lipsync_results"


class LipsyncConfigWarning(pytest.PytestWarning):
    """A setting that is probably not what was meant (a misspelt ``LIPSYNC_*`` variable, an override glob that
    matches no video): the run goes on and says so; ``-W error::pytest_lipsync.plugin.LipsyncConfigWarning``
    makes it stop."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "lipsync", "lip-sync quality gate (pytest-lipsync; every flag has the same-named [tool.lipsync] key)"
    )
    add_flags(group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**settings): a pytest-lipsync gate item, or per-test settings and thresholds"
    )
    config.stash[ACTIVE] = _flags_given(config) or _has_table(config)
    _CONFIGS.append(config)
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistController(config), "lipsync-xdist-controller")
    if config.stash[ACTIVE]:
        controller = not hasattr(config, "workerinput")
        gate_of(config).progress = _progress(config)  # before anything is scored
        with _usage_errors():
            gate_of(config).start(check_baseline=controller, list_videos=controller and _gate_items_wanted(config))
            _place(config)
        if not hasattr(config, "workerinput"):  # the workers share the controller's environment
            from pytest_lipsync.config.resolution import environment_warnings

            _warn(config, environment_warnings(os.environ))


def _warn(config: pytest.Config, messages: Sequence[str]) -> None:
    for message in messages:
        config.issue_config_time_warning(LipsyncConfigWarning(display_name(message)), stacklevel=2)


def _place(config: pytest.Config) -> None:
    """One device (or a fair share of the cores) per xdist worker, before anything initialises CUDA."""
    from pytest_lipsync.scale.placement import place_pytest_process

    resolved = gate_of(config).config
    workerinput = getattr(config, "workerinput", None)
    place_pytest_process(workerinput, resolved.settings.device, resolved.options.gpus, os.environ)


def _progress(config: pytest.Config) -> ProgressDisplay | None:
    """Throttled lines through pytest's terminal reporter (which keeps its own lines whole), with ``-v`` or on
    a terminal; never bars (they would fight pytest's output) and never on an xdist worker (no reporter)."""
    if hasattr(config, "workerinput"):
        return None
    from pytest_lipsync.reports.progress import ThrottledLines

    return ThrottledLines(lambda line: _progress_line(config, line))


def _progress_line(config: pytest.Config, line: str) -> None:
    """Looked up per line: the reporter is registered after this plugin's ``pytest_configure`` runs."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    verbosity = config.get_verbosity()
    if reporter is not None and verbosity >= 0 and (verbosity > 0 or reporter.isatty):
        reporter.write_line(line)


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line at the top of the log saying what the gate runs with, for whoever reads a CI failure."""
    if not config.stash[ACTIVE]:
        return None
    from pytest_lipsync.reports.summary import header_line

    return header_line(gate_of(config).config, cache_available=getattr(config, "cache", None) is not None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONFIGS:
        _CONFIGS.remove(config)


def gate_of(config: pytest.Config) -> GateSession:
    """The run's :class:`GateSession`, made on first use: an inert run never imports the gate's modules."""
    if GATE not in config.stash:
        from pytest_lipsync.session.run import GateSession

        config.stash[GATE] = GateSession(lambda: _layers(config), config.rootpath, getattr(config, "cache", None))
    return config.stash[GATE]


def current_gate() -> GateSession:
    """The innermost running session's gate, for the helpers; outside pytest there is none."""
    if not _CONFIGS:
        raise RuntimeError("pytest-lipsync's assertions run inside a pytest session with the plugin installed")
    return gate_of(_CONFIGS[-1])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append the gate's items before ``-m`` / ``-k`` deselect (they run after this hook).

    ``pytest tests/test_x.py`` names what to run: the videos join such a run only when ``--lipsync-videos``
    is on its command line too, so a project with a ``[tool.lipsync]`` table can still run one test file.
    """
    if config.stash[ACTIVE] and _gate_items_wanted(config):
        from pytest_lipsync.plugin.items import make_items, report_collected

        with _usage_errors():
            made = make_items(session, gate_of(config))
        _warn(config, gate_of(config).unmatched_overrides())
        report_collected(config, made)
        items.extend(made)


def _gate_items_wanted(config: pytest.Config) -> bool:
    named_paths = config.args_source == pytest.Config.ArgsSource.ARGS
    return not named_paths or config.getoption("lipsync_videos") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``lipsync_video`` runs the test once per configured video, named by the video's key."""
    if "lipsync_video" in metafunc.fixturenames:
        with _usage_errors():
            videos = gate_of(metafunc.config).videos
        metafunc.parametrize("lipsync_video", videos, ids=[entry.key for entry in videos], indirect=True)


@pytest.fixture(scope="session")
def lipsync_scorer(pytestconfig: pytest.Config) -> GateSession:
    """The session's scorer: ``lipsync_scorer.score(path, reference=None)``; models load once."""
    return gate_of(pytestconfig)


@pytest.fixture
def lipsync_video(request: pytest.FixtureRequest) -> LipsyncVideo:
    """One configured video, with this test's ``@pytest.mark.lipsync(...)`` arguments applied."""
    from pytest_lipsync.config.resolution import Layer
    from pytest_lipsync.session.run import LipsyncVideo

    gate = gate_of(request.config)
    marker = request.node.get_closest_marker(MARKER)
    layer = Layer("marker", marker.kwargs, request.node.nodeid) if marker is not None and marker.kwargs else None
    with _usage_errors():
        return LipsyncVideo(request.param, gate.config_with(layer))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if GATE not in config.stash or config.option.collectonly:
        return
    gate = config.stash[GATE]
    if hasattr(config, "workerinput"):
        config.workeroutput["lipsync"] = gate.payload()  # type: ignore[attr-defined]  # xdist adds workeroutput to a worker's config
    elif config.stash[ACTIVE] or gate.scores:
        with _usage_errors():
            config.stash[OUTPUTS] = _finish(gate)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """xdist worker: each test's report carries the results the gate got during it, so that a worker that
    dies later has lost nothing it finished."""
    outcome = yield
    config = item.config
    if hasattr(config, "workerinput") and GATE in config.stash:
        payload = config.stash[GATE].payload()
        if payload:
            setattr(outcome.get_result(), RESULTS, payload)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: take in what a finished worker had not sent with its tests' reports."""
    payload = getattr(node, "workeroutput", {}).get("lipsync")
    if payload:
        gate_of(node.config).absorb(payload)


class XdistController:
    """The xdist controller's hooks, bound to its config (these hooks are not given one): results arrive
    with each test's report, and a test whose worker died is recorded against its video."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, RESULTS, None)
        if payload:
            gate_of(self.config).absorb(payload)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        if not self.config.stash[ACTIVE]:
            return
        from pytest_lipsync.plugin.items import video_of

        gate = gate_of(self.config)
        key = video_of(crashitem, gate)
        if key is not None:
            gate.lost(key, str(report.longrepr))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if GATE not in config.stash or hasattr(config, "workerinput"):
        return
    from pytest_lipsync.reports.summary import summary_lines

    lines = summary_lines(config.stash[GATE].summary(config.stash.get(OUTPUTS, None)))
    if lines:
        terminalreporter.write_sep("=", "lipsync")
        for line in lines:
            terminalreporter.write_line(line)


def _finish(gate: GateSession) -> Outputs:
    """Write the JSON report, the baseline and the GitHub job summary, once, on the controller."""
    from pytest_lipsync.reports.github import publish_step_summary

    outputs = gate.finish()
    publish_step_summary(gate.summary(outputs))
    return outputs


def _layers(config: pytest.Config) -> list[Layer]:
    from pytest_lipsync.config.resolution import Layer, standard_layers

    flags = {key: value for key in flat_keys() if (value := config.getoption(f"lipsync_{key}")) is not None}
    here = config.invocation_params.dir
    return standard_layers(config.rootpath / "pyproject.toml", os.environ, Layer("flag", flags), here)


def _flags_given(config: pytest.Config) -> bool:
    return any(config.getoption(f"lipsync_{key}") is not None for key in flat_keys())


def _has_table(config: pytest.Config) -> bool:
    with _usage_errors():
        return read_table(config.rootpath / "pyproject.toml") is not None


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Turn a configuration problem into ``pytest.UsageError``: a clean message, no traceback."""
    try:
        yield
    except LipsyncError as error:
        raise pytest.UsageError(f"pytest-lipsync: {display_name(error.message)}") from None
