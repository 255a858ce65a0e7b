"""``lipsync init``: a commented ``[tool.lipsync]`` table and an example GitHub workflow, to start from.

It only ever adds: an existing ``[tool.lipsync]`` table or workflow file is left as it is (and said so),
because a user's tuned thresholds are worth more than a template.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path

from pytest_lipsync.results import write_text_atomic

WORKFLOW = Path(".github/workflows/lipsync.yml")
_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*lipsync\s*[.\]]", re.MULTILINE)


def template(name: str) -> str:
    """A file shipped in ``pytest_lipsync/templates`` (the README shows the same files)."""
    return (resources.files("pytest_lipsync") / "templates" / name).read_text(encoding="utf-8")


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("."), help="the project directory (default: here)")


def run_init(args: argparse.Namespace) -> int:
    for line in init_project(args.dir):
        print(line)
    return 0


def init_project(directory: Path) -> list[str]:
    """Add the table to ``pyproject.toml`` (created if absent) and write the workflow; say what was done."""
    return [_add_table(directory / "pyproject.toml"), _write_once(directory / WORKFLOW, template("lipsync.yml"))]


def _add_table(pyproject: Path) -> str:
    existing = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
    if _TABLE.search(existing):
        return f"{pyproject}: already has a [tool.lipsync] table, left unchanged"
    separator = "" if not existing or existing.endswith("\n") else "\n"
    table = template("pyproject-table.toml")
    write_text_atomic(pyproject, existing + separator + (table if existing else table.lstrip("\n")))
    return f"{pyproject}: {'added' if existing else 'created with'} a commented [tool.lipsync] table"


def _write_once(path: Path, text: str) -> str:
    if path.exists():
        return f"{path}: exists, left unchanged"
    write_text_atomic(path, text)
    return f"{path}: written (a self-hosted GPU runner workflow; edit the generator step)"
