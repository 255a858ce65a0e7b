"""The HTML report: a page that parses, names every video, loads nothing from the network, puts failures
first, escapes what it shows, and has plots when matplotlib is installed (and says how to get them when not)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_lipsync.cli import main
from pytest_lipsync.reports.html import write_report
from pytest_lipsync.reports.plots import INSTALL_HINT, load_pyplot
from pytest_lipsync.results import BoxStats, Report, RunRecord, ScoreError, TrackScore, VideoScore, WeightsRecord
from tests.test_plugin import clips, project, run, shared_cache  # noqa: F401 -- the pytester project's fixtures

pytest_plugins = ["pytester"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ODD_NAME = "clips/a<b>&c.mp4"


class Page(HTMLParser):
    """Every start tag with its attributes, the summary table's rows (first cell text) and all text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self._in_summary = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._in_summary = dict(attrs).get("id") == "summary"
        elif tag == "tr" and self._in_summary:
            self.rows.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_summary and self.rows and data.strip():
            self.rows[-1].append(data.strip())


def _track(start: int, shift: int) -> TrackScore:
    curve = tuple(10.0 - 4.0 * (i == 15 + shift) + 0.01 * i for i in range(31))
    confidence = tuple(3.0 + (i % 7) / 3 for i in range(40))
    return TrackScore(start, start + 39, 35, min(curve), 3.9, shift, curve, confidence, BoxStats(8, 120.5, 140.0))


def _report() -> Report:
    series = {"mean": 30.0, "worst": {"frame": 12, "value": 24.5}, "per_frame": [30.0 + (i % 5) for i in range(40)]}
    series["per_frame"][12] = 24.5  # type: ignore[index]
    ssim = {"mean": 0.9, "worst": {"frame": 12, "value": 0.71}, "per_frame": [0.9] * 12 + [0.71] + [0.9] * 27}
    good = VideoScore(
        ODD_NAME,
        {"lse_d": 6.1, "lse_c": 3.9, "offset": 1.0, "psnr": 30.0, "ssim": 0.9},
        (_track(0, 1), _track(50, -2)),
        frames=90,
        duration=3.6,
        quality={"psnr": series, "ssim": ssim, "error": None},
    )
    failed = VideoScore("clips/silent.mp4", {}, frames=10, error=ScoreError("no_audio", "has no audio <stream> & cannot be scored"))
    run_record = RunRecord("0.1", {"protocol": "pipeline"}, (WeightsRecord("syncnet", "/w/s.model", "ab" * 32, False),), "cpu")
    return Report(run_record, (good, failed))


def test_page_parses_names_every_video_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert ODD_NAME in text and "clips/silent.mp4" in text
    assert "no_audio: has no audio <stream> & cannot be scored" in text
    assert "ab" * 32 in text and "pipeline" in text
    resources = [value for _, attrs in page.tags for name, value in attrs.items() if name in ("src", "href")]
    assert resources and not [value for value in resources if "//" in (value or "")]
    assert [tag for tag, attrs in page.tags if tag in ("script", "link") and ("src" in attrs or "href" in attrs)] == []


def test_failing_rows_come_first_and_values_are_escaped(tmp_path: Path) -> None:
    source = write_report(_report(), tmp_path).read_text(encoding="utf-8")
    rows = Page(source).rows
    assert rows[0][:1] == ["video"]
    assert [row[0] for row in rows[1:]] == ["clips/silent.mp4", ODD_NAME]
    assert rows[1][-1] == "no_audio" and rows[2][1:] == ["6.100", "3.900", "1", "30.00", "0.9000", "ok"]
    assert "a<b>" not in source and "a&lt;b&gt;&amp;c.mp4" in source


def test_plots_are_png_files_beside_the_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    # The ok video: confidence, one distance curve per track, quality. The failed one has no data to plot.
    assert len(images) == 4
    for image in images:
        data = (tmp_path / str(image)).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_without_matplotlib_the_page_says_how_to_get_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = Page(write_report(_report(), tmp_path).read_text(encoding="utf-8"))
    assert f"Plots need matplotlib, which is not installed: {INSTALL_HINT}" in "".join(page.text)
    assert INSTALL_HINT == 'pip install "pytest-lipsync[report]"'
    assert [tag for tag, _ in page.tags if tag == "img"] == [] and list(tmp_path.glob("*.png")) == []


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


@pytest.mark.parametrize(("content", "reason"), [(None, "cannot be read"), ("{not json", "is not a pytest-lipsync report")])
def test_report_command_refuses_an_unreadable_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, reason: str) -> None:
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    assert main(["report", str(results), "-o", str(tmp_path / "html")]) == 2
    assert f"lipsync: error: {results}: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "html").exists()


def test_pytest_run_writes_the_html_report(project, pytester, shared_cache) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    load_pyplot()  # imported outside: pytester's in-process runs drop the modules they import
    project("", broken=True)
    result = run(pytester, shared_cache, "--lipsync-html=out/html")
    page = pytester.path / "out" / "html" / "index.html"
    result.stdout.fnmatch_lines([f"lipsync: HTML report written to {page}"])
    text = "".join(Page(page.read_text(encoding="utf-8")).text)
    assert all(name in text for name in ("videos/good.mp4", "videos/hard/late.mp4", "videos/broken.mp4"))
