"""``lipsync init``: a commented ``[tool.lipsync]`` table and an example GitHub workflow, to start from.

It only ever adds: an existing ``[tool.lipsync]`` table or workflow file is left as it is (and said so),
because a user's tuned thresholds are worth more than a template. The workflow spells out every step, or
with ``--action`` uses the repository's composite action (``action.yml``), which a project can pin by tag.

The baseline is written under a ``<baseline>.lock`` file beside it (see ``gate.baseline``); committed by
mistake, it would only confuse, so ``.gitignore`` gets that name, once, whenever the table names a baseline.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path

from pytest_lipsync.results import write_text_atomic

WORKFLOW = Path(".github/workflows/lipsync.yml")
DEFAULT_BASELINE = "lipsync-baseline.json"
_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*lipsync\s*[.\]]", re.MULTILINE)


def template(name: str) -> str:
    """A file shipped in ``pytest_lipsync/templates`` (docs/ci.md shows the same files)."""
    return (resources.files("pytest_lipsync") / "templates" / name).read_text(encoding="utf-8")


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("."), help="the project directory (default: here)")
    parser.add_argument(
        "--action",
        action="store_true",
        help="write a workflow that uses pytest-lipsync's GitHub Action instead of spelling out its steps",
    )


def run_init(args: argparse.Namespace) -> int:
    for line in init_project(args.dir, action=args.action):
        print(line)
    return 0


def init_project(directory: Path, *, action: bool = False) -> list[str]:
    """Add the table to ``pyproject.toml`` (created if absent), write the workflow and ignore the baseline's
    lock file; say what was done."""
    workflow = template("lipsync-action.yml" if action else "lipsync.yml")
    lines = [_add_table(directory / "pyproject.toml"), _write_once(directory / WORKFLOW, workflow)]
    ignored = _ignore_lock(directory, _baseline(directory / "pyproject.toml"))
    return lines if ignored is None else [*lines, ignored]


def _baseline(pyproject: Path) -> str | None:
    """The table's baseline file; the template's commented ``baseline`` line counts (it is one edit away)."""
    from pytest_lipsync.config.keys import read_table

    table = read_table(pyproject)
    if table is None:
        return None
    baseline = table.get("baseline")
    if isinstance(baseline, str):
        return baseline
    return DEFAULT_BASELINE if f'# baseline = "{DEFAULT_BASELINE}"' in pyproject.read_text(encoding="utf-8") else None


def _ignore_lock(directory: Path, baseline: str | None) -> str | None:
    """Add ``<baseline>.lock`` to ``.gitignore`` unless a line already says it."""
    if baseline is None:
        return None
    gitignore = directory / ".gitignore"
    entry = f"{baseline}.lock"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if entry in {line.strip() for line in existing.splitlines()}:
        return None
    separator = "" if not existing or existing.endswith("\n") else "\n"
    comment = "# pytest-lipsync: the lock held while the baseline is written\n"
    write_text_atomic(gitignore, f"{existing}{separator}{comment}{entry}\n")
    return f"{gitignore}: added {entry}"


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
