"""``lipsync score --parquet``: one row per video with the JSON Lines line's fields and values, written in row
groups as results arrive, published whole or not at all; and Parquet manifests. Needs pyarrow (the test extra
brings it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.results import ScoreError, TrackScore, VideoScore
from pytest_lipsync.scale import parquet
from pytest_lipsync.scale.stream import ResumePlan, StreamSink
from pytest_lipsync.scale.workers import Job
from pytest_lipsync.scoring.entry import VideoEntry
from tests.conftest import ScoreCommand
from tests.extras import import_extra
from tests.test_scale_stream import KEYS, RUN, _lines, project, score  # noqa: F401 (fixtures)

pa = import_extra("pyarrow", "parquet")
pq = import_extra("pyarrow.parquet", "parquet")


def _as_line(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back as the JSON line it stands for: maps as objects, JSON text parsed."""
    line = {**row, "metrics": dict(row["metrics"]), "timings": dict(row["timings"])}
    if row["error"] is not None:
        line["error"] = {**row["error"], "facts": json.loads(row["error"]["facts"])}
    if row["quality"] is not None:
        line["quality"] = json.loads(row["quality"])
    return line


def _rows(path: Path) -> list[dict[str, Any]]:
    return [_as_line(row) for row in pq.read_table(path).to_pylist()]


def _header(path: Path) -> dict[str, Any]:
    return json.loads(pq.read_schema(path).metadata[parquet.METADATA_KEY])


RESULTS = [
    VideoScore(
        "a.mp4",
        {"lse_d": 7.25, "lse_c": 5.5, "offset": -1.0},
        (TrackScore(0, 29, 25, 7.25, 5.5, -1, (7.5, 8.0), (5.5,)),),
        frames=30,
        audio_frames=30,
        duration=1.2,
        timings={"decode": 0.5},
    ),
    VideoScore("b.mp4", error=ScoreError("unreadable", "b.mp4: not a video", {"bytes": 12, "codec": None})),
    VideoScore("c.mp4", {"lse_d": float("nan"), "psnr": 31.0}, quality={"psnr": {"mean": 31.0, "frames": [30.5]}}),
]


def _sink(tmp_path: Path, jsonl: Path | None, plan: ResumePlan = ResumePlan()) -> StreamSink:
    return StreamSink(jsonl, tmp_path / "r.parquet", [r.path for r in RESULTS], "1/1", plan)


def _job(result: VideoScore, tmp_path: Path) -> Job:
    return Job(1, VideoEntry(result.path, tmp_path / result.path))


def test_rows_hold_the_json_lines_fields_and_values_in_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet, "ROWS_PER_GROUP", 2)
    sink = _sink(tmp_path, tmp_path / "r.jsonl")
    sink.start(RUN)
    for result in RESULTS:
        sink.put(_job(result, tmp_path), result, "f" * 64)
    assert not (tmp_path / "r.parquet").exists()  # published when the run is complete, not before
    sink.close(complete=True)
    header, *lines = _lines(tmp_path / "r.jsonl")
    assert pq.read_schema(tmp_path / "r.parquet").names == list(lines[0])  # the line's fields, in its order
    assert _rows(tmp_path / "r.parquet") == lines
    assert _header(tmp_path / "r.parquet") == header
    assert pq.ParquetFile(tmp_path / "r.parquet").num_row_groups == 2  # written as results came: 2, then 1
    assert lines[2]["metrics"] == {"lse_d": None, "psnr": 31.0}  # not finite: null, in both files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_an_incomplete_run_leaves_no_parquet_file_and_an_earlier_one_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "r.parquet").write_bytes(b"an earlier file")
    sink = _sink(tmp_path, None)
    sink.start(RUN)
    sink.put(_job(RESULTS[0], tmp_path), RESULTS[0], None)
    sink.close(complete=False)  # interrupted: a part of a run is no result
    assert (tmp_path / "r.parquet").read_bytes() == b"an earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]
    assert sink.outcomes.errors == {"a.mp4": None}


def test_a_resumed_run_writes_the_kept_lines_and_the_new_ones(tmp_path: Path) -> None:
    for result in RESULTS:
        (tmp_path / result.path).write_bytes(result.path.encode())
    first = StreamSink(tmp_path / "r.jsonl", None, [r.path for r in RESULTS], "1/1", ResumePlan())
    first.start(RUN)
    for result in RESULTS[:2]:
        first.put(_job(result, tmp_path), result)
    first.close(complete=False)
    plan = ResumePlan.read(tmp_path / "r.jsonl", {r.path: tmp_path / r.path for r in RESULTS})
    assert set(plan.kept) == {"a.mp4", "b.mp4"}
    sink = _sink(tmp_path, tmp_path / "r.jsonl", plan)
    sink.start(RUN)
    sink.put(_job(RESULTS[2], tmp_path), RESULTS[2])
    sink.close(complete=True)
    _, *lines = _lines(tmp_path / "r.jsonl")
    assert [line["path"] for line in lines] == ["a.mp4", "b.mp4", "c.mp4"]
    assert _rows(tmp_path / "r.parquet") == lines
    assert sink.outcomes.failed == [("b.mp4", RESULTS[1].error)]


@pytest.mark.slow
def test_score_writes_parquet_beside_jsonl_and_resumes_into_both(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl", "--parquet", "out.parquet", "-q") == 0
    assert "3 videos in run.jsonl (3 scored now, 0 kept from before): 3 ok" in capsys.readouterr().out
    header, *lines = _lines(project / "run.jsonl")
    assert _rows(project / "out.parquet") == lines and _header(project / "out.parquet") == header
    (project / "out" / "clip34.mp4").write_bytes((project / "out" / "clip31.mp4").read_bytes())
    assert score("out", "--jsonl", "run.jsonl", "--resume", "--parquet", "out.parquet", "-q") == 0
    assert "4 videos in run.jsonl (1 scored now, 3 kept from before)" in capsys.readouterr().out
    _, *lines = _lines(project / "run.jsonl")
    assert len(lines) == 4 and _rows(project / "out.parquet") == lines
    assert score("out", "--parquet", "alone.parquet", "-q") == 0  # without a JSON Lines file: the summary names it
    assert "4 videos in alone.parquet (4 scored now, 0 kept from before): 4 ok" in capsys.readouterr().out
    assert sorted(row["path"] for row in _rows(project / "alone.parquet")) == [*KEYS, "out/clip34.mp4"]


def test_a_parquet_manifest_lists_the_videos_relative_to_itself(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "lists").mkdir()
    table = pa.table({"path": ["../out/clip33.mp4", None, " ", "../out/clip31.mp4"], "lse_c": [7.5, 1.0, 2.0, 6.0]})
    pq.write_table(table, project / "lists" / "keep.parquet")
    assert score("--manifest", "lists/keep.parquet", "--json", "kept.json", "-q") == 0
    assert [v["path"] for v in json.loads((project / "kept.json").read_text())["videos"]] == [KEYS[0], KEYS[2]]
    pq.write_table(pa.table({"file": ["x.mp4"]}), project / "lists" / "bad.parquet")
    (project / "lists" / "fake.parquet").write_text("path\nx.mp4\n")
    capsys.readouterr()
    assert score("--manifest", "lists/bad.parquet", "-q") == 2
    assert "bad.parquet: has no 'path' column (columns: ['file'])" in capsys.readouterr().err
    assert score("--manifest", "lists/fake.parquet", "-q") == 2
    assert "fake.parquet: is not a readable Parquet file" in capsys.readouterr().err
