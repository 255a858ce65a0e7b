"""The scale-out recipes: the matrix workflow template and the Dockerfile run commands that exist.

No Docker engine or YAML parser here: the checks are on the text (structure, and every ``lipsync`` command
line parses with the real command's parser, every ``--lipsync-*`` flag is a real flag).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from pytest_lipsync.cli.app import _parser
from pytest_lipsync.cli.init import template
from pytest_lipsync.config.keys import flat_keys

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _lipsync_commands(lines: list[str]) -> list[list[str]]:
    """The arguments of every ``lipsync ...`` command in shell lines, up to the next ``&&``, ``||`` or ``;``."""
    commands = []
    for line in lines:
        tokens = shlex.split(line, comments=True)
        for start in (n for n, token in enumerate(tokens) if token == "lipsync"):
            rest = tokens[start + 1 :]
            end = next((n for n, token in enumerate(rest) if token in ("&&", "||", ";")), len(rest))
            commands.append(rest[:end])
    return commands


def _dockerfile_commands() -> list[str]:
    lines = []
    for line in DOCKERFILE.read_text().splitlines():
        instruction, _, rest = line.partition(" ")
        if instruction == "RUN":
            lines.append(rest)
        elif instruction == "CMD":
            lines.append(shlex.join(json.loads(rest)))
    return lines


def _workflow_run_lines(text: str) -> list[str]:
    return [line.split("run:", 1)[1] for line in text.splitlines() if line.strip().startswith(("run:", "- run:"))]


def test_dockerfile_is_a_cuda_runtime_image_with_the_weights_fetched_at_build_time() -> None:
    text = DOCKERFILE.read_text()
    base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
    assert "cuda" in base and base.endswith("-runtime")
    assert "LIPSYNC_HOME=" in text
    commands = _lipsync_commands(_dockerfile_commands())
    assert [command[0] for command in commands] == ["fetch-models", "doctor"]
    assert commands[0] == ["fetch-models", "--to", "$LIPSYNC_HOME"]


def test_recipe_commands_are_ones_the_cli_has() -> None:
    workflow = template("lipsync-matrix.yml")
    commands = _lipsync_commands(_dockerfile_commands() + _workflow_run_lines(workflow))
    assert {command[0] for command in commands} == {"fetch-models", "doctor", "merge", "gate", "report"}
    parser = _parser()
    for command in commands:
        parser.parse_args(command)  # exits (status 2) on an unknown command or option


@pytest.mark.parametrize("name", ["lipsync.yml", "lipsync-matrix.yml"])
def test_workflow_templates_use_real_pytest_flags(name: str) -> None:
    flags = set(re.findall(r"--lipsync-([a-z-]+)", template(name)))
    assert flags and flags <= {key.replace("_", "-") for key in flat_keys()}


def test_matrix_workflow_structure() -> None:
    text = template("lipsync-matrix.yml")
    assert "\t" not in text
    top = [line.split(":")[0] for line in text.splitlines() if re.match(r"^[a-z]", line)]
    assert top == ["name", "on", "jobs"]
    jobs = [line.strip().rstrip(":") for line in text.splitlines() if re.match(r"^  [a-z-]+:$", line)]
    assert jobs == ["score", "gate"]
    shards = json.loads(re.search(r"shard: (\[[\d, ]+\])", text).group(1))  # type: ignore[union-attr]  # no match fails the test here
    assert shards == list(range(1, len(shards) + 1))
    assert f"--lipsync-shard ${{{{ matrix.shard }}}}/{len(shards)}" in text
    assert "needs: score" in text and "container:" in text and "--gpus all" in text
    score_job = text[text.index("  score:") : text.index("  gate:")]
    assert "if-no-files-found: error" in score_job  # a shard that wrote no report fails where it happened
    indents = {len(line) - len(line.lstrip()) for line in text.splitlines() if line.strip()}
    assert all(indent % 2 == 0 for indent in indents)


def test_readme_links_the_scale_out_recipes() -> None:
    assert "docs/scale-out.md" in (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "scale-out.md").read_text()
    for named in (
        "pytest_lipsync/templates/lipsync-matrix.yml",
        "docker/Dockerfile",
        "--tx ssh=",
        "lipsync merge",
        "lipsync gate",
    ):
        assert named in doc
