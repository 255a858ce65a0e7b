"""``lipsync score --jsonl``/``--resume``/``--shard``/``--manifest``: results streamed line by line, resumed
after an interruption, and read back by ``merge`` and ``gate`` as the report they stand for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.config.resolution import Layer, resolve, standard_layers
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.results import RunRecord, VideoScore, WeightsRecord
from pytest_lipsync.scale.sharding import slurm_shard
from pytest_lipsync.scale.stream import Header, Line, ResumePlan, file_sha256, read_jsonl
from pytest_lipsync.synthetic.clips import ClipSpec
from tests.conftest import MakeClip, ScoreCommand

RUN = RunRecord(
    "0.1.0", {"protocol": "cropped", "fidelity": "clean"}, (WeightsRecord("syncnet", "w", "a" * 64, True),), "cpu"
)


@pytest.fixture
def project(make_clip: MakeClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the working directory) with ``out/`` holding three short clips."""
    for name in [name for name in __import__("os").environ if name.startswith(("LIPSYNC_", "GITHUB_", "SLURM_"))]:
        monkeypatch.delenv(name)
    (tmp_path / "pyproject.toml").write_text("[tool.lipsync]\n")
    (tmp_path / "out").mkdir()
    for seed in (31, 32, 33):
        clip = make_clip(f"stream_{seed}.mp4", ClipSpec(seconds=1.0, width=48, height=48, seed=seed))
        (tmp_path / "out" / f"clip{seed}.mp4").write_bytes(clip.read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def score(syncnet_weights: Path) -> ScoreCommand:
    """``lipsync score`` with stand-in weights, the cropped protocol and clean fidelity (fast, offline); the
    arguments come last, so that they may choose another protocol."""
    common = ["--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline"]

    def run(*arguments: str) -> int:
        return main(["score", *common, "--syncnet-weights", str(syncnet_weights), *arguments])

    return run


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_timings(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "videos": [{**video, "timings": {}} for video in document["videos"]]}


KEYS = ["out/clip31.mp4", "out/clip32.mp4", "out/clip33.mp4"]


@pytest.mark.slow
def test_jsonl_holds_a_header_and_one_line_per_video_and_gates_like_the_json(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--json", "plain.json", "-q") == 0
    assert score("out", "--jsonl", "run.jsonl", "--json", "streamed.json", "-q") == 0
    assert "3 videos in run.jsonl (3 scored now, 0 kept from before): 3 ok, 0 failed" in capsys.readouterr().out
    header, *videos = _lines(project / "run.jsonl")
    plain = json.loads((project / "plain.json").read_text())
    assert header["format"] == "pytest-lipsync-jsonl" and header["collected"] == KEYS
    assert {key: header[key] for key in ("tool", "settings", "weights", "device")} == {
        key: plain[key] for key in ("tool", "settings", "weights", "device")
    }
    assert sorted(video["path"] for video in videos) == KEYS
    assert all(video["sha256"] == file_sha256(project / video["path"]) for video in videos)
    # Each line is the JSON report's entry plus its hash; --json alongside is the same report as without.
    by_key = {video["path"]: video for video in plain["videos"]}
    assert all(
        {**line, "timings": {}} == {**by_key[line["path"]], "sha256": line["sha256"], "timings": {}} for line in videos
    )
    assert _without_timings(json.loads((project / "streamed.json").read_text())) == _without_timings(plain)
    assert main(["gate", "run.jsonl"]) == 0
    assert main(["merge", "run.jsonl", "-o", "merged.json"]) == 0
    assert _without_timings(json.loads((project / "merged.json").read_text())) == _without_timings(plain)


@pytest.mark.slow
def test_resume_scores_only_new_or_changed_videos(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl") == 0
    capsys.readouterr()
    assert score("out", "--jsonl", "run.jsonl", "--resume") == 0
    captured = capsys.readouterr()
    assert "(0 scored now, 3 kept from before)" in captured.out and "[1/" not in captured.err
    (project / "out" / "clip32.mp4").write_bytes((project / "out" / "clip33.mp4").read_bytes())  # content changed
    (project / "out" / "clip34.mp4").write_bytes((project / "out" / "clip31.mp4").read_bytes())  # a new video
    assert score("out", "--jsonl", "run.jsonl", "--resume") == 0
    captured = capsys.readouterr()
    assert "4 videos in run.jsonl (2 scored now, 2 kept from before)" in captured.out
    assert sorted(line.split()[1] for line in captured.err.splitlines() if line.endswith(" s")) == [
        "out/clip32.mp4",
        "out/clip34.mp4",
    ]
    contents = read_jsonl(project / "run.jsonl")
    assert contents.header.collected == (*KEYS, "out/clip34.mp4") and len(_lines(project / "run.jsonl")) == 5
    assert contents.lines["out/clip32.mp4"].sha256 == file_sha256(project / "out" / "clip33.mp4")


@pytest.mark.slow
def test_a_torn_last_line_is_ignored_with_a_warning_and_its_video_scored_again(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl", "-q") == 0
    text = (project / "run.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    torn_key = json.loads(lines[-1])["path"]
    (project / "run.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    capsys.readouterr()
    assert main(["gate", "run.jsonl"]) == 2  # the torn video is missing: refused like an incomplete report
    err = capsys.readouterr().err
    assert "line 4 was cut short (an interrupted write) and is ignored" in err
    assert f"has no result for 1 of the 3 videos its run collected: {torn_key}" in err
    assert score("out", "--jsonl", "run.jsonl", "--resume", "-q") == 0
    captured = capsys.readouterr()
    assert "line 4 was cut short" in captured.err and "(1 scored now, 2 kept from before)" in captured.out
    assert [line["path"] for line in _lines(project / "run.jsonl")[1:]][-1] == torn_key
    assert main(["gate", "run.jsonl"]) == 0


def test_a_broken_line_before_the_last_is_refused(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl", "-q") == 0
    lines = (project / "run.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:20] + "\n"
    (project / "run.jsonl").write_text("".join(lines))
    capsys.readouterr()
    assert main(["gate", "run.jsonl"]) == 2
    assert "run.jsonl: is not a pytest-lipsync report (line 2:" in capsys.readouterr().err
    assert score("out", "--jsonl", "run.jsonl", "--resume", "-q") == 2
    assert "cannot be resumed, it is not a results file" in capsys.readouterr().err


def test_an_existing_file_needs_resume_and_resume_needs_the_same_run(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl", "-q") == 0
    before = (project / "run.jsonl").read_text()
    capsys.readouterr()
    assert score("out", "--jsonl", "run.jsonl", "-q") == 2
    assert "run.jsonl: already holds results. Pass --resume" in capsys.readouterr().err
    assert score("out", "--resume", "-q") == 2
    assert "--resume needs --jsonl OUT.jsonl" in capsys.readouterr().err
    header, *rest = before.splitlines(keepends=True)
    edited = json.loads(header)
    edited["weights"][0]["sha256"] = "b" * 64
    (project / "run.jsonl").write_text(json.dumps(edited) + "\n" + "".join(rest))
    (project / "out" / "clip34.mp4").write_bytes((project / "out" / "clip31.mp4").read_bytes())  # one to score
    assert score("out", "--jsonl", "run.jsonl", "--resume", "-q") == 2
    err = capsys.readouterr().err
    assert "cannot be resumed with these settings or weights: syncnet weights SHA-256" in err
    assert (project / "run.jsonl").read_text() == json.dumps(edited) + "\n" + "".join(rest)  # left as it was


@pytest.mark.slow
def test_machine_failures_are_retried_on_resume(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--jsonl", "run.jsonl", "-q") == 0
    header, *videos = _lines(project / "run.jsonl")
    crashed = {**videos[0], "metrics": {}, "tracks": [], "error": {"kind": "worker_crashed", "message": "died"}}
    (project / "run.jsonl").write_text("".join(json.dumps(d) + "\n" for d in [header, crashed, *videos[1:]]))
    capsys.readouterr()
    assert main(["gate", "run.jsonl"]) == 1
    assert score("out", "--jsonl", "run.jsonl", "--resume", "-q") == 0
    assert "(1 scored now, 2 kept from before): 3 ok" in capsys.readouterr().out


@pytest.mark.slow
def test_shards_stream_to_files_that_merge_into_the_whole_run(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score("out", "--json", "whole.json", "-q") == 0
    assert score("out", "--shard", "1/2", "--jsonl", "s1.jsonl", "-q") == 0
    assert main(["gate", "s1.jsonl"]) == 2  # one shard is not a whole run
    assert main(["merge", "s1.jsonl", "-o", "half.json"]) == 2  # shard 2/2 is missing
    assert score("out", "--shard", "2/2", "--jsonl", "s2.jsonl", "-q") == 0
    assert main(["merge", "s1.jsonl", "s2.jsonl", "-o", "all.json"]) == 0
    assert _without_timings(json.loads((project / "all.json").read_text())) == _without_timings(
        json.loads((project / "whole.json").read_text())
    )
    assert {read_jsonl(project / f"s{n}.jsonl").header.shard for n in (1, 2)} == {"1/2", "2/2"}


def test_a_manifest_lists_the_videos_relative_to_itself(
    project: Path, score: ScoreCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "lists").mkdir()
    (project / "lists" / "keep.txt").write_text("# kept clips\n../out/clip31.mp4\n\n../out/clip33.mp4\n")
    (project / "lists" / "keep.csv").write_text("path,lse_c\n../out/clip32.mp4,7.5\n")
    assert score("--manifest", "lists/keep.txt", "--json", "txt.json", "-q") == 0
    assert [v["path"] for v in json.loads((project / "txt.json").read_text())["videos"]] == [KEYS[0], KEYS[2]]
    assert score("--manifest", "lists/keep.csv", "--json", "csv.json", "-q") == 0
    assert [v["path"] for v in json.loads((project / "csv.json").read_text())["videos"]] == [KEYS[1]]
    (project / "lists" / "bad.csv").write_text("file\nx.mp4\n")
    capsys.readouterr()
    assert score("--manifest", "lists/bad.csv", "-q") == 2
    assert "bad.csv: has no 'path' column" in capsys.readouterr().err
    assert score("-q") == 2
    assert "no videos given" in capsys.readouterr().err


def test_writer_and_reader_agree_and_later_lines_win(tmp_path: Path) -> None:
    from pytest_lipsync.scale.stream import JsonlWriter

    header = Header(RUN, ("a.mp4", "b.mp4"), "1/1")
    kept = json.dumps(Line(VideoScore("a.mp4", {"lse_d": 7.0}), "1" * 64).to_dict()).encode()  # without its newline
    writer = JsonlWriter(tmp_path / "r.jsonl", header, [kept])
    writer.write(Line(VideoScore("b.mp4", {"lse_d": 8.0}), None))
    writer.write(Line(VideoScore("a.mp4", {"lse_d": 6.5}), "2" * 64))
    writer.close()
    contents = read_jsonl(tmp_path / "r.jsonl")
    assert contents.header == header and contents.torn is None
    assert list(contents.lines) == ["b.mp4", "a.mp4"] and contents.lines["a.mp4"].sha256 == "2" * 64
    report = contents.report()
    assert [v.path for v in report.videos] == ["a.mp4", "b.mp4"] and report.videos[0].metrics == {"lse_d": 6.5}
    assert report.shard == "1/1" and report.collected == ("a.mp4", "b.mp4")


def test_resume_plan_keeps_only_matching_hashes(tmp_path: Path) -> None:
    from pytest_lipsync.scale.stream import JsonlWriter

    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(name.encode())
    writer = JsonlWriter(tmp_path / "r.jsonl", Header(RUN, ("a.mp4", "b.mp4", "c.mp4")))
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        writer.write(Line(VideoScore(name), file_sha256(tmp_path / name)))
    writer.close()
    (tmp_path / "b.mp4").write_bytes(b"changed")
    wanted = {name: tmp_path / name for name in ("a.mp4", "b.mp4", "d.mp4")}  # c.mp4 is no longer listed
    plan = ResumePlan.read(tmp_path / "r.jsonl", wanted)
    assert set(plan.kept) == {"a.mp4"}
    plan.check_run(RUN, tmp_path / "r.jsonl")
    with pytest.raises(ConfigError, match="fidelity = 'clean' in .*, 'reference' now"):
        plan.check_run(RunRecord("0.1.0", {**RUN.settings, "fidelity": "reference"}, RUN.weights, "cpu"), tmp_path)


def _resolved_shard(layer: Layer, environ: dict[str, str], root: Path) -> str | None:
    """The ``shard`` setting as the plugin and ``lipsync score`` resolve it: ``layer`` over ``environ``."""
    return resolve(standard_layers(root / "pyproject.toml", environ, layer, root), root).options.shard


@pytest.mark.parametrize(
    ("task", "count", "first", "shard"),
    [
        ("0", "4", "0", "1/4"),
        ("3", "4", "0", "4/4"),
        ("1", "4", "1", "1/4"),
        ("4", "4", "1", "4/4"),
        ("12", "3", "10", "3/3"),
    ],
)
def test_slurm_array_tasks_map_to_one_based_shards(
    task: str, count: str, first: str, shard: str, tmp_path: Path
) -> None:
    environ = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_COUNT": count, "SLURM_ARRAY_TASK_MIN": first}
    assert str(slurm_shard(environ)) == shard
    # One setting for the gate and the command: "slurm" from any source is this task's shard.
    assert _resolved_shard(Layer("option", {"shard": "slurm"}), environ, tmp_path) == shard
    assert _resolved_shard(Layer("flag", {"shard": " Slurm "}), environ, tmp_path) == shard
    assert _resolved_shard(Layer("flag", {}), {**environ, "LIPSYNC_SHARD": "slurm"}, tmp_path) == shard


def test_slurm_shard_refuses_what_does_not_number_shards(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^--shard is invalid: 'slurm' needs SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT"
    ):
        _resolved_shard(Layer("option", {"shard": "slurm"}), {}, tmp_path)
    with pytest.raises(ConfigError, match=r"^LIPSYNC_SHARD is invalid: 'slurm' needs .*this is not a Slurm array task"):
        _resolved_shard(Layer("flag", {}), {"LIPSYNC_SHARD": "slurm"}, tmp_path)
    stepped = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
    with pytest.raises(ConfigError, match="step 2"):
        slurm_shard({**stepped, "SLURM_ARRAY_TASK_STEP": "2"})
    with pytest.raises(ConfigError, match=r"--lipsync-shard is invalid: shard is '0/4': shards count from 1.*ID \+ 1"):
        _resolved_shard(Layer("flag", {"shard": "0/4"}), {}, tmp_path)
    assert _resolved_shard(Layer("option", {"shard": " 2 / 4 "}), {}, tmp_path) == "2/4"
    assert _resolved_shard(Layer("option", {}), {}, tmp_path) is None


@pytest.mark.slow
def test_a_configured_shard_splits_lipsync_score_too(
    project: Path, score: ScoreCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard of pyproject.toml or LIPSYNC_SHARD applies to lipsync score as to the gate: its JSON says so."""
    environ = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
    for name, value in {**environ, "LIPSYNC_SHARD": "slurm"}.items():
        monkeypatch.setenv(name, value)
    assert score("out", "--json", "s2.json", "-q") == 0
    monkeypatch.setenv("LIPSYNC_SHARD", "1/2")
    assert score("out", "--json", "s1.json", "-q") == 0
    parts = [json.loads((project / f"s{n}.json").read_text()) for n in (1, 2)]
    assert [part["shard"] for part in parts] == ["1/2", "2/2"] and all(part["collected"] == KEYS for part in parts)
    assert sorted(video["path"] for part in parts for video in part["videos"]) == KEYS


def test_importing_the_package_and_the_cli_imports_no_ray() -> None:
    code = (
        "import sys, pytest_lipsync, pytest_lipsync.cli.app as app, pytest_lipsync.scale.stream, "
        "pytest_lipsync.cli.dataset; app._parser(); "
        "print(sorted(m for m in ('ray', 'torch', 'cv2', 'av') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_score_without_videos_or_a_manifest_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score"]) == 2
    assert "no videos given. Give videos, folders or globs, or --manifest FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_and_the_summary_over_a_large_file_hold_one_entry_per_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10,000 lines of 500 videos (plus one no longer listed), each line with a per-frame series: the resume set and
    the summary are those of each key's last line, and neither holds the lines in memory while reading them."""
    import random
    import tracemalloc

    from pytest_lipsync.cli.dataset import _summary
    from pytest_lipsync.results import ScoreError, TrackScore
    from pytest_lipsync.scale.stream import StreamSink

    keys = [f"v{n:03d}.mp4" for n in range(500)]
    for key in keys:
        (tmp_path / key).write_bytes(key.encode())
    sha = {key: file_sha256(tmp_path / key) for key in keys}
    rng = random.Random(20)
    kinds = [None, None, None, "unreadable", "timeout", "worker_crashed"]
    series = tuple(round(rng.random(), 6) for _ in range(40))
    last: dict[str, tuple[int, str | None, str | None]] = {}  # key -> (line number, error kind, hash)
    path = tmp_path / "big.jsonl"
    with open(path, "w") as stream:
        stream.write(json.dumps(Header(RUN, tuple(keys)).to_dict()) + "\n")
        for number in range(2, 10_002):
            key = rng.choice([*keys, "gone.mp4"])
            kind = rng.choice(kinds)
            digest = "0" * 64 if rng.random() < 0.1 else sha.get(key)  # a tenth: the file changed since
            error = None if kind is None else ScoreError(kind, f"{key}: {kind}")
            track = TrackScore(0, 49, 45, 7.0, 5.0, 0, series, series)
            stream.write(json.dumps(Line(VideoScore(key, tracks=(track,), error=error), digest).to_dict()) + "\n")
            last[key] = (number, kind, digest)
    kept = {
        key: number
        for key, (number, kind, digest) in last.items()
        if key in sha and kind not in ("timeout", "worker_crashed") and digest == sha[key]
    }
    assert 100 < len(kept) < 400  # the draw left videos of every sort
    size = path.stat().st_size

    tracemalloc.start()
    try:
        plan = ResumePlan.read(path, {key: tmp_path / key for key in keys})
        _, reading = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sink = StreamSink(path, None, keys, None, plan)
        sink.start(RUN)
        sink.close(complete=True)
        _, rewriting = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.kept == kept  # each kept key with the number of its last line
    # The file is 8 MB and its lines as objects far more; a key's entry is a few hundred bytes (and hashing a
    # file reads it in chunks of 1 MB).
    assert size > 8_000_000 and reading < 4_000_000 and rewriting < 4_000_000
    header, *rewritten = _lines(path)
    assert header["collected"] == keys
    assert [line["path"] for line in rewritten] == sorted(kept, key=kept.__getitem__)  # in the old file's order
    failed = sorted(key for key in kept if last[key][1] is not None)
    assert [key for key, _ in sink.outcomes.failed] == failed
    _summary(sink.outcomes, path, 0, len(kept))
    summary = capsys.readouterr().out.splitlines()
    assert summary[0].endswith(
        f"({0} scored now, {len(kept)} kept from before): {len(kept) - len(failed)} ok, {len(failed)} failed"
    )
    assert (
        summary[1] == f"  {failed[0]}: unreadable: {failed[0]}: unreadable"
        and summary[-1] == f"  and {len(failed) - 10} more"
    )


@pytest.mark.parametrize(
    ("module", "arguments", "message", "extra"),
    [
        ("ray", ["out", "--executor", "ray"], "--executor ray needs Ray, which is not installed", "ray"),
        ("pyarrow", ["out", "--parquet", "out.parquet"], "--parquet needs pyarrow, which is not installed", "parquet"),
        (
            "pyarrow",
            ["--manifest", "keep.parquet"],
            "keep.parquet: is a Parquet file: reading a Parquet manifest needs pyarrow, which is not installed",
            "parquet",
        ),
    ],
)
def test_without_an_extra_its_options_are_usage_errors_saying_how_to_get_it(
    module: str,
    arguments: list[str],
    message: str,
    extra: str,
    project: Path,
    score: ScoreCommand,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import MODULE raises ImportError
    (project / "keep.parquet").write_bytes(b"PAR1")
    assert score(*arguments, "-q") == 2
    err = capsys.readouterr().err
    assert message in err and f'pip install "pytest-lipsync[{extra}]"' in err
    assert sorted(path.name for path in project.iterdir()) == ["keep.parquet", "out", "pyproject.toml"]  # no output


def test_a_rewrite_interrupted_while_copying_the_kept_lines_leaves_the_old_file(tmp_path: Path) -> None:
    from collections.abc import Iterator

    from pytest_lipsync.scale.stream import JsonlWriter

    (tmp_path / "r.jsonl").write_text("the earlier run's lines\n")

    def kept() -> Iterator[bytes]:
        yield b'{"path": "a.mp4"}\n'
        raise KeyboardInterrupt  # a Ctrl-C while the old file is read again

    with pytest.raises(KeyboardInterrupt):
        JsonlWriter(tmp_path / "r.jsonl", Header(RUN, ("a.mp4",)), kept())
    assert (tmp_path / "r.jsonl").read_text() == "the earlier run's lines\n"
    assert [path.name for path in tmp_path.iterdir()] == ["r.jsonl"]  # no temporary left
