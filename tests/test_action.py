"""The GitHub Action (``action.yml``) and what ``lipsync init`` writes for CI: every input is used, the steps
run in the order the gate needs, and init only ever adds (a workflow, one ``.gitignore`` line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_lipsync.cli.app import main
from pytest_lipsync.cli.init import init_project

yaml = pytest.importorskip("yaml", reason="PyYAML (the test extra) parses the action")
ROOT = Path(__file__).resolve().parents[1]


def _action() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def _index(steps: list[dict[str, Any]], predicate: Any) -> int:
    (found,) = [i for i, step in enumerate(steps) if predicate(step)]
    return found


def test_the_action_is_composite_and_uses_every_input() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    text = yaml.safe_dump(action["runs"]["steps"])
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used == set(action["inputs"]), "inputs declared but not used, or used but not declared"
    assert {"python-version", "torch", "package", "pytest-args", "cache-key"} <= used
    for step in action["runs"]["steps"]:
        assert "run" not in step or step.get("shell") == "bash"  # a composite run step must name its shell
        assert "${{" not in step.get("run", ""), "inputs reach scripts through env, never pasted into them"


def test_the_action_steps_run_in_order() -> None:
    steps = _action()["runs"]["steps"]
    uses = lambda name: lambda step: step.get("uses", "").startswith(name)  # noqa: E731
    runs = lambda text: lambda step: text in step.get("run", "")  # noqa: E731
    order = [
        _index(steps, uses("actions/setup-python@")),
        _index(steps, runs("pip install $TORCH")),
        _index(steps, runs('pip install "${PACKAGE')),
        _index(steps, runs("LIPSYNC_HOME=")),
        _index(steps, uses("actions/cache/restore@")),
        _index(steps, runs("lipsync fetch-models")),
        _index(steps, uses("actions/cache/save@")),
        _index(steps, runs("pytest -m lipsync")),
        _index(steps, uses("actions/upload-artifact@v4")),
    ]
    assert order == sorted(order)
    assert steps[order[1]]["if"] == "inputs.torch != ''"
    gate = steps[order[7]]["run"]
    assert '--lipsync-json "$RESULTS" --lipsync-html "$REPORT" $PYTEST_ARGS' in gate
    upload = steps[order[8]]
    assert upload["if"] == "always()" and "inputs.results" in upload["with"]["path"]
    assert "inputs.report" in upload["with"]["path"]
    restore, save = steps[order[4]], steps[order[6]]
    assert restore["with"] == save["with"] and "steps.weights.outputs.cache-hit" in save["if"]
    # the metrics' networks are fetched and cached with the weights, under a key that names them
    fetch = steps[order[5]]
    assert fetch["env"] == {"METRICS": "${{ inputs.metrics }}"} and "set -f" in fetch["run"]
    assert "${METRICS:+--metrics $METRICS}" in fetch["run"] and restore["with"]["key"].endswith("${{ inputs.metrics }}")


def test_init_action_writes_a_workflow_that_uses_the_action(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path), "--action"]) == 0
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "lipsync.yml").read_text())
    steps = workflow["jobs"]["lipsync"]["steps"]
    (gate,) = [step for step in steps if "pytest-lipsync@" in step.get("uses", "")]
    assert gate["uses"] == "OWNER/pytest-lipsync@v0"
    assert set(gate["with"]) <= set(_action()["inputs"])
    assert "# OWNER:" in (tmp_path / ".github" / "workflows" / "lipsync.yml").read_text()  # says what to replace


def test_init_ignores_the_baseline_lock_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("build/")
    lines = init_project(tmp_path)
    assert lines[-1].endswith("added lipsync-baseline.json.lock")
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "build/"
    init_project(tmp_path)
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert ignored.count("lipsync-baseline.json.lock") == 1


def test_init_ignores_the_configured_baselines_lock(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.lipsync]\nbaseline = "gate/base.json"\n')
    init_project(tmp_path)
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == "gate/base.json.lock"


def test_init_without_a_baseline_leaves_gitignore_alone(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.lipsync]\nvideos = "out"\n')
    init_project(tmp_path)
    assert not (tmp_path / ".gitignore").exists()
