"""The HTML report: a page that parses, names every video, loads nothing from the network, puts failures
first, escapes what it shows, and has plots inlined when matplotlib is installed (and says how to get them
when not): one file, written atomically. ``test_reports_browser.py`` opens it in a real browser."""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.reports.github import artifact_line
from pytest_lipsync.reports.html import INDEX, annotated_path, write_report
from pytest_lipsync.reports.plots import INSTALL_HINT, load_pyplot
from pytest_lipsync.results import (
    BoxStats,
    Report,
    RunRecord,
    ScoreError,
    TrackScore,
    VideoScore,
    WeightsRecord,
)
from tests.conftest import PytesterProject
from tests.test_plugin import clips, project, run, shared_cache  # noqa: F401 -- the pytester project's fixtures

pytest_plugins = ["pytester"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DATA = "data:image/png;base64,"
ODD_NAME = "clips/a<b>&c.mp4"
GITHUB_RUN = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "me/gen",
    "GITHUB_RUN_ID": "7",
}
ARTIFACTS = "https://github.com/me/gen/actions/runs/7#artifacts"


class Page(HTMLParser):
    """Every start tag with its attributes, the summary table's rows (first cell text), all text, and each
    figure's image by the figure's id: its caption (alt text) and the src."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.figures: dict[str, tuple[str, str]] = {}
        self._in_summary = False
        self._figure: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "figure":
            self._figure = dict(attrs).get("id")
        elif tag == "img" and self._figure is not None:
            self.figures[self._figure] = (str(dict(attrs).get("alt")), str(dict(attrs).get("src")))
        elif tag == "table":
            self._in_summary = dict(attrs).get("id") == "summary"
        elif tag == "tr" and self._in_summary:
            self.rows.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_summary = False
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_summary and self.rows and data.strip():
            self.rows[-1].append(data.strip())


def _png(src: str) -> bytes:
    """The PNG file a ``data:`` URI holds: strict base64, PNG signature."""
    assert src.startswith(PNG_DATA), src[:60]
    try:
        data = base64.b64decode(src[len(PNG_DATA) :], validate=True)
    except binascii.Error as error:
        raise AssertionError(f"not base64: {error}") from None
    assert data.startswith(PNG_SIGNATURE)
    return data


def _image_size(png: bytes) -> tuple[int, int]:
    """Decoded whole (PIL's ``load``), so that a truncated file fails here."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return image.size


def _track(start: int, shift: int) -> TrackScore:
    curve = tuple(10.0 - 4.0 * (i == 15 + shift) + 0.01 * i for i in range(31))
    confidence = tuple(3.0 + (i % 7) / 3 for i in range(40))
    return TrackScore(start, start + 39, 35, min(curve), 3.9, shift, curve, confidence, BoxStats(8, 120.5, 140.0))


def _report() -> Report:
    series = {"mean": 30.0, "worst": {"frame": 12, "value": 24.5}, "per_frame": [30.0 + (i % 5) for i in range(40)]}
    series["per_frame"][12] = 24.5  # type: ignore[index]  # the dict's values are typed object
    ssim = {"mean": 0.9, "worst": {"frame": 12, "value": 0.71}, "per_frame": [0.9] * 12 + [0.71] + [0.9] * 27}
    good = VideoScore(
        ODD_NAME,
        {"lse_d": 6.1, "lse_c": 3.9, "offset": 1.0, "psnr": 30.0, "ssim": 0.9},
        (_track(0, 1), _track(50, -2)),
        frames=90,
        duration=3.6,
        quality={"psnr": series, "ssim": ssim, "error": None},
    )
    failed = VideoScore(
        "clips/silent.mp4", {}, frames=10, error=ScoreError("no_audio", "has no audio <stream> & cannot be scored")
    )
    run_record = RunRecord(
        "0.1", {"protocol": "pipeline"}, (WeightsRecord("syncnet", "/w/s.model", "ab" * 32, False),), "cpu"
    )
    return Report(run_record, (good, failed))


def test_page_parses_names_every_video_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert ODD_NAME in text and "clips/silent.mp4" in text
    assert "no_audio: has no audio <stream> & cannot be scored" in text
    assert "ab" * 32 in text and "pipeline" in text
    resources = [value for _, attrs in page.tags for name, value in attrs.items() if name in ("src", "href")]
    remote = [value for value in map(urlsplit, map(str, resources)) if value.scheme not in ("", "data") or value.netloc]
    assert resources and remote == []
    assert [tag for tag, attrs in page.tags if tag in ("script", "link") and ("src" in attrs or "href" in attrs)] == []


def test_failing_rows_come_first_and_values_are_escaped(tmp_path: Path) -> None:
    source = write_report(_report(), tmp_path).read_text(encoding="utf-8")
    rows = Page(source).rows
    assert rows[0][:1] == ["video"]
    assert [row[0] for row in rows[1:]] == ["clips/silent.mp4", ODD_NAME]
    assert rows[1][-1] == "no_audio" and rows[2][1:] == ["6.100", "3.900", "1", "30.00", "0.9000", "ok"]
    assert "a<b>" not in source and "a&lt;b&gt;&amp;c.mp4" in source


def test_plots_are_decodable_png_data_uris_and_the_page_is_the_only_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    # The ok video: confidence, one distance curve per track, quality. The failed one has no data to plot.
    assert sorted(page.figures) == [
        "video-002-confidence",
        "video-002-distance-1",
        "video-002-distance-2",
        "video-002-quality",
    ]
    sizes = {name: _image_size(_png(src)) for name, (_, src) in page.figures.items()}
    # figsize x dpi 100, as plots.py draws them
    assert sizes == {
        "video-002-confidence": (1000, 300),
        "video-002-distance-1": (600, 300),
        "video-002-distance-2": (600, 300),
        "video-002-quality": (800, 440),
    }
    resources = [value or "" for _, attrs in page.tags for name, value in attrs.items() if name in ("src", "href")]
    assert [value for value in resources if not value.startswith(("#", PNG_DATA))] == []
    assert [path.name for path in tmp_path.iterdir()] == [INDEX]


def test_the_page_alone_still_shows_every_plot(tmp_path: Path) -> None:
    """Moved (mailed, downloaded) without its folder: the same images, nothing it refers to is missing."""
    pytest.importorskip("matplotlib")
    written = write_report(_report(), tmp_path / "report").read_text(encoding="utf-8")
    moved = tmp_path / "elsewhere" / "page.html"
    moved.parent.mkdir()
    shutil.move(tmp_path / "report" / INDEX, moved)
    assert Page(moved.read_text(encoding="utf-8")).figures == Page(written).figures
    assert len(Page(written).figures) == 4


def test_a_failed_write_leaves_the_previous_page_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_lipsync.reports import html

    before = write_report(_report(), tmp_path).read_text(encoding="utf-8")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(html, "video_plots", broken)
    monkeypatch.setattr(html, "load_pyplot", lambda: None)
    with pytest.raises(RuntimeError, match="plotting failed"):
        write_report(replace(_report(), videos=_report().videos[:1]), tmp_path)
    assert (tmp_path / INDEX).read_text(encoding="utf-8") == before
    assert [path.name for path in tmp_path.iterdir()] == [INDEX]


def test_without_matplotlib_the_page_says_how_to_get_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    assert f"Plots need matplotlib, which is not installed: {INSTALL_HINT}" in "".join(page.text)
    assert INSTALL_HINT == 'pip install "pytest-lipsync[report]"'
    assert [tag for tag, _ in page.tags if tag == "img"] == [] and [path.name for path in tmp_path.iterdir()] == [INDEX]


def test_report_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_report().to_dict()))
    assert main(["report", str(results), "-o", str(tmp_path / "html")]) == 0
    assert (tmp_path / "html" / "index.html").is_file()
    assert f"HTML report written to {tmp_path / 'html' / 'index.html'}" in capsys.readouterr().out


def test_report_command_shows_changes_since_the_baseline(tmp_path: Path) -> None:
    report = _report()
    results, baseline = tmp_path / "results.json", tmp_path / "baseline.json"
    results.write_text(json.dumps(report.to_dict()))
    earlier = replace(report.videos[0], metrics={"lse_d": 5.9, "lse_c": 4.0, "offset": 1.0})
    baseline.write_text(json.dumps(replace(report, videos=(earlier,)).to_dict()))
    assert main(["report", str(results), "-o", str(tmp_path / "html"), "--baseline", str(baseline)]) == 0
    page = Page((tmp_path / "html" / "index.html").read_text(encoding="utf-8"))
    rows = page.rows
    assert "In brackets: the change since the baseline." in "".join(page.text)
    assert rows[2][:5] == [ODD_NAME, "6.100", "(+0.200)", "3.900", "(-0.100)"]
    assert rows[1][1:3] == ["-", "-"]


@pytest.mark.parametrize(
    ("content", "reason"), [(None, "cannot be read"), ("{not json", "is not a pytest-lipsync report")]
)
def test_report_command_refuses_an_unreadable_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, reason: str
) -> None:
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    assert main(["report", str(results), "-o", str(tmp_path / "html")]) == 2
    assert f"lipsync: error: {results}: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "html").exists()


def test_pytest_run_writes_the_html_report(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    load_pyplot()  # imported outside: pytester's in-process runs drop the modules they import
    project("[tool.lipsync.thresholds]\nlse_c_min = 2.5\n", broken=True)
    for name, value in {**GITHUB_RUN, "GITHUB_STEP_SUMMARY": str(pytester.path / "summary.md")}.items():
        monkeypatch.setenv(name, value)
    result = run(pytester, shared_cache, "--lipsync-html=out/html")
    page = pytester.path / "out" / "html" / "index.html"
    result.stdout.fnmatch_lines([f"lipsync: HTML report written to {page}"])
    text = "".join(Page(page.read_text(encoding="utf-8")).text)
    assert all(name in text for name in ("videos/good.mp4", "videos/hard/late.mp4", "videos/broken.mp4"))
    summary = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert f"[this run's artifacts]({ARTIFACTS})" in summary and "`lipsync-report` artifact" in summary
    captions = [attrs.get("alt") for tag, attrs in Page(page.read_text(encoding="utf-8")).tags if tag == "img"]
    assert (
        "Smoothed per-frame confidence of each face track; shaded: the threshold band (lse_c_min 2.5 +- 1)" in captions
    )


# A file name with a byte that is not UTF-8: Python holds it as a lone surrogate (surrogateescape).
UNDECODABLE = os.fsdecode(b"clips/take\xff.mp4")


def test_a_file_name_that_is_not_utf8_is_shown_with_its_byte_escaped(tmp_path: Path) -> None:
    from urllib.parse import unquote_to_bytes

    broken = VideoScore(UNDECODABLE, error=ScoreError("unreadable", f"{UNDECODABLE}: cannot be opened as a video"))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(replace(_report(), videos=(broken,)).to_dict()))
    annotated = annotated_path(tmp_path / "html", UNDECODABLE)
    annotated.parent.mkdir(parents=True)
    annotated.write_bytes(b"stand-in")
    assert main(["report", str(results), "-o", str(tmp_path / "html")]) == 0
    page = Page((tmp_path / "html" / "index.html").read_text(encoding="utf-8"))
    assert page.rows[1][0] == "clips/take\\xff.mp4" and "unreadable: clips/take\\xff.mp4: cannot be opened" in "".join(
        page.text
    )
    (link,) = {attrs["src"] for tag, attrs in page.tags if tag == "video"}
    assert link == "videos/clips/take%FF.mp4" and (tmp_path / "html" / os.fsdecode(unquote_to_bytes(link))).is_file()


def test_pytest_run_writes_the_html_report_for_a_name_that_is_not_utf8(
    project: PytesterProject, pytester: pytest.Pytester, shared_cache: Path
) -> None:
    load_pyplot()  # imported outside: pytester's in-process runs drop the modules they import
    project(broken=False)
    shutil.copyfile(pytester.path / "videos" / "good.mp4", pytester.path / "videos" / os.fsdecode(b"\xff.mp4"))
    result = run(pytester, shared_cache, "--lipsync-html=html", "--lipsync-json=r.json")
    result.assert_outcomes(passed=3)
    text = "".join(Page((pytester.path / "html" / "index.html").read_text(encoding="utf-8")).text)
    assert "videos/\\xff.mp4" in text
    assert os.fsdecode(b"videos/\xff.mp4") in [
        video["path"] for video in json.loads((pytester.path / "r.json").read_text())["videos"]
    ]
    result.stdout.fnmatch_lines(["videos/\\xff.mp4::lipsync PASSED*", "videos/\\xff.mp4 * passed"])


def test_confidence_band_is_the_gates_threshold_or_the_default(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_lipsync.gate.rules import GateRules, Thresholds

    for rules, label in (
        (None, "default threshold 3 +- 1"),
        (GateRules(Thresholds(lse_c_min=5.0)), "lse_c_min 5 +- 1"),
    ):
        page = Page(write_report(_report(), tmp_path / label, rules=rules).read_text(encoding="utf-8"))
        captions = [attrs["alt"] for tag, attrs in page.tags if tag == "img"]
        assert f"Smoothed per-frame confidence of each face track; shaded: the threshold band ({label})" in captions


def _quality_video(generated: Path, reference: Path) -> VideoScore:
    psnr = {"mean": 30.0, "worst": {"frame": 12, "value": 24.5}, "per_frame": [30.0] * 25}
    ssim = {"mean": 0.9, "worst": {"frame": 20, "value": 0.7}, "per_frame": [0.9] * 25}
    quality = {"reference": str(reference), "psnr": psnr, "ssim": ssim, "error": None}
    return VideoScore(str(generated), {"psnr": 30.0, "ssim": 0.9}, frames=25, duration=1.0, quality=quality)


def test_the_worst_frames_get_a_side_by_side_image(quality_trees: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    out, gt = quality_trees
    report = replace(_report(), videos=(_quality_video(out / "talks" / "a.avi", gt / "talks" / "a.mkv"),))
    page = Page(write_report(report, tmp_path / "html").read_text(encoding="utf-8"))
    figures = page.figures
    assert figures["video-001-worst-12"][0] == "Frame 12, the worst by PSNR: generated, ground truth, difference (x4)"
    assert figures["video-001-worst-20"][0] == "Frame 20, the worst by SSIM: generated, ground truth, difference (x4)"
    with Image.open(io.BytesIO(_png(figures["video-001-worst-12"][1]))) as image:
        assert image.size == (1200, 360) and len(np.unique(np.asarray(image.convert("L")))) > 50  # not blank


def test_no_worst_frame_image_when_the_files_are_not_here(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = replace(_report(), videos=(_quality_video(tmp_path / "gone.mp4", tmp_path / "gone-too.mp4"),))
    page = Page(write_report(report, tmp_path / "html").read_text(encoding="utf-8"))
    assert list(page.figures) == ["video-001-quality"]


def test_ground_truth_that_is_not_a_regular_file_is_never_opened(
    quality_trees: tuple[Path, Path], tmp_path: Path
) -> None:
    """A FIFO would block the report forever waiting for a writer: it is a file that is not here."""
    pytest.importorskip("matplotlib")
    out, _ = quality_trees
    fifo = tmp_path / "truth.mp4"
    os.mkfifo(fifo)
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(replace(_report(), videos=(_quality_video(out / "talks" / "a.avi", fifo),)).to_dict())
    )
    code = "import sys; from pytest_lipsync.cli.app import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "report", str(results), "-o", str(tmp_path / "html")]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )  # a hang fails here
    assert done.returncode == 0, done.stderr
    page = Page((tmp_path / "html" / "index.html").read_text(encoding="utf-8"))
    assert list(page.figures) == ["video-001-quality"]


def test_a_section_embeds_its_annotated_video_when_there_is_one(tmp_path: Path) -> None:
    from urllib.parse import unquote

    annotated = annotated_path(tmp_path, ODD_NAME)
    assert annotated == tmp_path / "videos" / "clips" / "a<b>&c.mp4"
    annotated.parent.mkdir(parents=True)
    annotated.write_bytes(b"stand-in")
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    links = [attrs["src"] for tag, attrs in page.tags if tag == "video"] + [
        attrs["href"] for tag, attrs in page.tags if tag == "a" and "videos/" in (attrs["href"] or "")
    ]
    assert links == ["videos/clips/a%3Cb%3E%26c.mp4"] * 2 and (tmp_path / unquote(links[0])).is_file()  # type: ignore[arg-type]  # links equals a list of str just before
    assert annotated_path(tmp_path, "/abs/talk.mov") == tmp_path / "videos" / "abs" / "talk.mp4"
    text = " ".join("".join(page.text).split())
    assert "It is a separate file, videos/clips/a<b>&c.mp4 beside this page: keep the two together." in text
    # Shown by the page's script when the browser cannot play it (test_reports_browser.py plays both cases).
    (unplayable,) = [attrs for tag, attrs in page.tags if "unplayable" in (attrs.get("class") or "")]
    assert "hidden" in unplayable
    assert "This browser cannot play videos/clips/a<b>&c.mp4: the file is not beside this page" in text


def test_an_annotated_video_is_referenced_never_inlined(tmp_path: Path) -> None:
    """Videos are megabytes: the video adds a reference to the page, not its bytes."""
    without = len(write_report(_report(), tmp_path).read_bytes())
    annotated = annotated_path(tmp_path, ODD_NAME)
    annotated.parent.mkdir(parents=True)
    annotated.write_bytes(b"\0" * 1_000_000)
    page = write_report(_report(), tmp_path).read_text(encoding="utf-8")
    assert 0 < len(page.encode()) - without < 1_000 and "data:video" not in page
    assert [(tag, attrs["src"]) for tag, attrs in Page(page).tags if tag == "video"] == [
        ("video", "videos/clips/a%3Cb%3E%26c.mp4")
    ]


def test_artifact_line_needs_the_run_and_report_adds_it_to_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "me/gen", "GITHUB_RUN_ID": "42"}
    line = artifact_line(environ)
    assert line == (
        "**HTML report** (plots, annotated videos): the `lipsync-report` artifact of "
        "[this run's artifacts](https://github.com/me/gen/actions/runs/42#artifacts)."
    )
    assert artifact_line({**environ, "GITHUB_RUN_ID": ""}) is None
    results, summary = tmp_path / "results.json", tmp_path / "summary.md"
    results.write_text(json.dumps(_report().to_dict()))
    monkeypatch.chdir(tmp_path)
    for name, value in {**environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}.items():
        monkeypatch.setenv(name, value)
    assert main(["report", str(results), "-o", str(tmp_path / "html")]) == 0
    assert summary.read_text() == f"{line}\n"


def test_the_dataset_fid_is_shown_with_what_it_was_computed_over(tmp_path: Path) -> None:
    section = {"value": 12.345678, "videos": 2, "generated_frames": 80, "reference_frames": 78}
    report = replace(_report(), dataset={"fid": section})
    page = Page(write_report(report, tmp_path).read_text(encoding="utf-8"))
    text = " ".join("".join(page.text).split())
    assert "Over the whole dataset: FID 12.35 (80 generated frames of 2 videos against 78 ground-truth frames)" in text
    assert "whole dataset" not in write_report(_report(), tmp_path / "none").read_text(encoding="utf-8")
