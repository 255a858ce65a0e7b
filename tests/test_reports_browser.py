"""The HTML report in a real browser: Chromium, headless, driven by Playwright, opens a report that the real
commands made (``lipsync score``, ``visualize``, ``report`` on synthetic clips with stand-in weights) from
``file://``, and checks what a reader sees: the page renders without script errors, the table has a row per
video and sorts on a click, every plot is drawn, the annotated video plays (its H.264 and AAC decoded), and
nothing is requested from the network. The page alone, moved away from its folder, still draws its plots and
says that the video is not beside it.

Needs Playwright (in the ``test`` extra) and a ``chromium`` executable on PATH (Debian: ``apt-get install
chromium``). Playwright's own browser downloads are never used: the system's Chromium is launched by path.
Without either the tests skip, naming what is missing; with ``PYTEST_LIPSYNC_REQUIRE_EXTRAS=1`` (set by
``.ci/run``, as for Ray and pyarrow) they fail instead, so that CI cannot pass by skipping them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.reports.html import INDEX, annotated_path
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip
from tests.extras import REQUIRE
from tests.test_faces_pipeline import MARKER, SHORT

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route

pytestmark = pytest.mark.slow  # scoring three clips and annotating one: about 30 s

# Headless, and nothing of Chromium's own that talks to the network (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL = ("file:", "data:")
TIMEOUT_MS = 15_000
ANNOTATED = "clips/talk.mp4"
# The annotated clip has room around the face; the other is another face; the third has none (a failing row).
CLIPS = {"talk.mp4": replace(SHORT, border=64), "other.mp4": replace(SHORT, seed=5), "blank.mp4": ClipSpec(1.0, 96, 72)}
FLAGS = ["--detector", MARKER, "--offline", "--device", "cpu", "--fidelity", "clean", "--min-track", "50", "-q"]
# figsize x dpi 100, as reports/plots.py draws them
PLOT_SIZES = {"confidence": [1000, 300], "distance-1": [600, 300]}


def _missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return 'Playwright is not installed: pip install -e ".[test]"'
    if shutil.which("chromium") is None:
        return "no chromium executable on PATH: apt-get install chromium (Debian), or your system's package"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    """First, before the report is made: skip (or, where CI requires the browser, fail) without one."""
    missing = _missing_browser()
    if missing is None:
        return
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{missing} ({REQUIRE}=1: the browser tests must run here)", pytrace=False)
    pytest.skip(f"the browser tests need a browser: {missing}")


@dataclass
class Opened:
    """A page, every request it made (only local ones are let through) and what went wrong in it: console
    errors and uncaught script errors."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith(LOCAL):
            route.continue_()
        else:
            route.abort()

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def remote(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL)]

    def eval(self, script: str) -> Any:
        return self.page.evaluate(script)

    def first_column(self) -> list[str]:
        cells = self.eval(
            "Array.from(document.querySelectorAll('#summary tbody tr td:first-child'), td => td.innerText)"
        )
        return [str(cell) for cell in cells]


Open = Callable[[Path], Opened]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # fresh: no state from another run
            executable_path=shutil.which("chromium"),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def open_page(browser: BrowserContext) -> Iterator[Open]:
    """``open_page(path)``: the file at ``path`` loaded in a new tab, every request recorded; closed after."""
    pages: list[Page] = []

    def open_(path: Path) -> Opened:
        page = browser.new_page()
        pages.append(page)
        page.set_default_timeout(TIMEOUT_MS)
        opened = Opened(page)
        page.route("**/*", opened.route)
        page.on("console", opened.console)
        page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))
        page.goto(path.as_uri(), wait_until="load")
        return opened

    yield open_
    for page in pages:
        page.close()


@pytest.fixture(scope="module")
def report(make_clip: MakeClip, syncnet_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of three clips scored, one annotated into the report's ``videos/``, and the report written."""
    project = tmp_path_factory.mktemp("browser-project")
    (project / "pyproject.toml").write_text("[tool.lipsync]\n", encoding="utf-8")
    (project / "clips").mkdir()
    for name, spec in CLIPS.items():
        shutil.copyfile(make_clip(f"browser_{name}", spec), project / "clips" / name)
    flags = [*FLAGS, "--syncnet-weights", str(syncnet_weights)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        assert main(["score", "clips", "--json", "results.json", *flags]) == 1  # the blank clip has no face
        assert main(["visualize", ANNOTATED, "-o", str(annotated_path(project / "report", ANNOTATED)), *flags]) == 0
        assert main(["report", "results.json", "-o", "report"]) == 0
    return project / "report" / INDEX


def _lse_d(report: Path) -> dict[str, float | None]:
    videos = json.loads((report.parent.parent / "results.json").read_text(encoding="utf-8"))["videos"]
    return {video["path"]: video["metrics"].get("lse_d") for video in videos}


def test_the_page_renders_its_rows_and_plots_and_requests_nothing_remote(report: Path, open_page: Open) -> None:
    opened = open_page(report)
    assert opened.page.locator("#summary").is_visible()
    # Failing rows first, then by path, as written.
    assert opened.first_column() == ["clips/blank.mp4", "clips/other.mp4", "clips/talk.mp4"]
    assert opened.eval("document.querySelector('#video-1 pre.error').innerText").startswith(
        "no_face_track: clips/blank.mp4: no face detected"
    )
    drawn = opened.eval(
        "Array.from(document.images, i => [i.closest('figure').id, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert drawn == [
        [f"video-{number:03d}-{plot}", True, *size] for number in (2, 3) for plot, size in PLOT_SIZES.items()
    ]
    assert opened.errors == []
    assert opened.remote() == [] and opened.requests[0] == report.as_uri()


def test_clicking_a_header_sorts_the_table(report: Path, open_page: Open) -> None:
    """Numbers by value, the failed row's "-" last both ways; text by its letters."""
    opened = open_page(report)
    scored = sorted((value, path) for path, value in _lse_d(report).items() if value is not None)
    header = opened.page.locator("#summary th", has_text="LSE-D")
    header.click()
    assert opened.first_column() == [path for _, path in scored] + ["clips/blank.mp4"]
    header.click()
    assert opened.first_column() == [path for _, path in reversed(scored)] + ["clips/blank.mp4"]
    opened.page.locator("#summary th", has_text="video").click()
    assert opened.first_column() == ["clips/blank.mp4", "clips/other.mp4", "clips/talk.mp4"]
    opened.page.locator("#summary th", has_text="video").click()
    assert opened.first_column() == ["clips/talk.mp4", "clips/other.mp4", "clips/blank.mp4"]
    assert opened.errors == []


def test_the_annotated_video_plays_with_its_sound(report: Path, open_page: Open) -> None:
    opened = open_page(report)
    assert opened.eval("document.querySelectorAll('video').length") == 1
    opened.eval("() => { const video = document.querySelector('video'); video.muted = true; return video.play(); }")
    opened.page.wait_for_function("document.querySelector('video').currentTime > 1")
    state = opened.eval(
        "(v => [v.error, v.readyState >= 2, v.videoWidth, v.videoHeight, v.webkitAudioDecodedByteCount > 0])"
        "(document.querySelector('video'))"
    )
    assert state == [None, True, 160 + 2 * 64, 160 + 2 * 64, True]
    assert opened.eval("document.querySelector('.unplayable').hidden") is True
    assert annotated_path(report.parent, ANNOTATED).as_uri() in opened.requests
    assert opened.errors == [] and opened.remote() == []


def test_the_page_alone_draws_its_plots_and_says_the_video_is_not_beside_it(
    report: Path, open_page: Open, tmp_path: Path
) -> None:
    alone = tmp_path / "mailed.html"
    shutil.copyfile(report, alone)
    opened = open_page(alone)
    opened.page.wait_for_function("!document.querySelector('.unplayable').hidden")
    assert opened.eval("document.querySelector('.unplayable').innerText") == (
        f"This browser cannot play videos/{ANNOTATED}: the file is not beside this page, "
        "or the browser has no H.264 decoder."
    )
    assert opened.eval("Array.from(document.images, i => i.naturalWidth > 0)") == [True] * 4
    assert opened.errors == ["Failed to load resource: net::ERR_FILE_NOT_FOUND"]  # the video, and nothing else
    assert opened.remote() == []


def test_the_network_check_sees_a_remote_request(open_page: Open, tmp_path: Path) -> None:
    """The check above cannot pass by not looking: a page that asks for a remote image is seen (and refused)."""
    page = tmp_path / "remote.html"
    page.write_text('<!DOCTYPE html><img src="http://203.0.113.1/probe.png">', encoding="utf-8")
    assert open_page(page).remote() == ["http://203.0.113.1/probe.png"]
