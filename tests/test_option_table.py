"""The one option table: every setting is declared once, on its dataclass field, and the pyproject key, the
``LIPSYNC_*`` variable, the ``--lipsync-*`` flag, the ``lipsync`` commands' options and the reference page all
come from that declaration. These tests fail when a front-end grows an option of its own or a setting loses
its help text.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pytest_lipsync.cli.app import _parser
from pytest_lipsync.config import reference, table
from pytest_lipsync.config.keys import flat_keys
from tests.conftest import registered_flags

ROOT = Path(__file__).resolve().parents[1]
# Options of a command that are not settings: what it reads and writes, and how it runs.
OWN_OPTIONS = {
    "score": {
        "json",
        "workers",
        "quiet",
        "executor",
        "ray_address",
        "ray_cpus_per_actor",
        "jsonl",
        "parquet",
        "resume",
        "manifest",
    },
    "visualize": {"output", "quiet"},
    "gate": set(),
}


def _subparser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings and action.dest != "help"}


def test_the_table_has_every_key_once() -> None:
    keys = [entry.key for entry in table.entries()]
    assert keys == list(flat_keys())
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("entry", table.entries(), ids=lambda entry: entry.key)
def test_every_setting_has_help_text(entry: table.Entry) -> None:
    assert entry.help.strip(), f"{entry.key} has no help text: declare it with setting(..., help=...)"
    assert not entry.help.endswith("."), "help is a phrase: the page ends the sentence"


@pytest.mark.parametrize("command", sorted(OWN_OPTIONS))
def test_a_commands_options_are_exactly_the_settings_declared_for_it(command: str) -> None:
    options = _options(_subparser(command))
    declared = {entry.key for entry in table.entries() if command in entry.commands}
    assert declared, f"no setting is declared for lipsync {command}"
    assert set(options) - OWN_OPTIONS[command] == declared


def test_visualize_takes_the_scoring_options_but_ground_truths_and_the_protocol() -> None:
    """visualize draws face tracks: only the pipeline protocol has them, so it offers no --protocol; it draws
    one video, so it takes no --shard; nor does it measure frame quality."""
    score, visualize = (set(_options(_subparser(name))) for name in ("score", "visualize"))
    quality = {"reference", "ssim_window", "color", "region", "resize_reference", "max_length_mismatch"}
    quality |= {"metrics", "lpips_net", "fid_stride", "fid_max_frames"}
    assert score - OWN_OPTIONS["score"] - quality - {"protocol", "shard"} == visualize - OWN_OPTIONS["visualize"]


def test_option_spellings_are_the_keys_with_hyphens() -> None:
    for command in OWN_OPTIONS:
        for dest, action in _options(_subparser(command)).items():
            if dest not in OWN_OPTIONS[command]:
                assert action.option_strings == [f"--{dest.replace('_', '-')}"], action.option_strings


def test_options_are_typed_by_the_fields_annotation() -> None:
    score = _options(_subparser("score"))
    assert score["min_track"].type is int and score["facedet_scale"].type is float
    assert score["timeout"].type is float
    assert list(score["protocol"].choices or ()) == ["pipeline", "cropped"]
    assert list(score["precision"].choices or ()) == ["fp32", "bf16", "fp16"]
    assert score["offline"].default is None and score["offline"].nargs == 0
    gate = _options(_subparser("gate"))
    assert isinstance(gate["allow"], argparse._AppendAction)
    assert gate["lse_d_max"].type is float
    assert all(action.default is None for action in score.values() if action.dest not in OWN_OPTIONS["score"])


def test_help_shows_the_default() -> None:
    score = {dest: action.help or "" for dest, action in _options(_subparser("score")).items()}
    assert "(default: 100)" in score["min_track"]
    assert "(default: pipeline)" in score["protocol"]
    assert "(default: 60 s + 100 s per second of video" in score["timeout"]
    assert "default" not in score["offline"]  # a switch is off unless given


def test_help_is_plain_text_where_the_page_has_links() -> None:
    for command in OWN_OPTIONS:
        for action in _options(_subparser(command)).values():
            assert not re.search(r"\]\(|`", action.help or ""), action.help


def test_pytest_flags_say_what_the_commands_options_say() -> None:
    flags = registered_flags()
    assert sorted(flags) == sorted(entry.flag for entry in table.entries())
    score = _options(_subparser("score"))
    assert flags["--lipsync-min-track"]["help"] == score["min_track"].help
    assert flags["--lipsync-videos"]["action"] == "append"
    assert flags["--lipsync-offline"] == {**flags["--lipsync-offline"], "action": "store_true", "default": None}


def test_the_reference_table_is_generated_from_the_declarations() -> None:
    rows = reference.table_lines()
    assert rows[0].startswith("| key | type | default | flag | environment variable | meaning |")
    body = {line.split(" | ")[0].strip("| `"): line for line in rows[2:]}
    assert list(body) == list(flat_keys())
    assert '`"pipeline"` or `"cropped"`' in body["protocol"]
    assert "integer > 0" in body["min_track"] and "number > 0 and <= 1" in body["facedet_scale"]
    assert "unset: not gated" in body["lse_d_max"]


def test_regenerating_replaces_only_the_table() -> None:
    page = f"# Title\n\nprose\n\n{reference.BEGIN}\n| old |\n{reference.END}\n\nmore prose\n"
    regenerated = reference.render(page)
    assert regenerated.startswith("# Title\n\nprose\n\n") and regenerated.endswith("\n\nmore prose\n")
    assert "| old |" not in regenerated and reference.render(regenerated) == regenerated


def test_a_page_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        reference.render("# no table here\n")


def test_the_generator_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"intro\n{reference.BEGIN}\n{reference.END}\n", encoding="utf-8")
    assert reference.main(["--write", str(page)]) == 0
    assert "| `protocol` |" in page.read_text(encoding="utf-8")
    assert reference.main([str(page)]) == 0
    assert capsys.readouterr().out.rstrip("\n") == page.read_text(encoding="utf-8").rstrip("\n")
