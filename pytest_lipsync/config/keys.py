"""The names and types of pytest-lipsync's keys, and reading them from ``pyproject.toml``.

This is all an inert pytest run needs from the plugin (flags to register, whether the rootdir's
``pyproject.toml`` has a ``[tool.lipsync]`` table), so it stays small: the resolution and validation in
``config`` and the verdicts in ``gate`` are imported only when the plugin is in use. The keys are the
fields of ``Settings``, ``RunOptions``, ``Thresholds`` and ``AllowList``: a field added to one is at once a
pyproject key, an environment variable and a flag (and, where its declaration says so, an option of a
``lipsync`` command: see ``table``).
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lipsync.bounds import setting
from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.rules import Thresholds
from pytest_lipsync.settings import Settings

TABLE = "tool.lipsync"
# The pytest marker: on a gate item, and on a user's test as the highest-precedence source of settings.
MARKER = "lipsync"


@dataclass(frozen=True)
class RunOptions:
    """What a gate run reads and writes, beside how it scores (paths relative to the rootdir).

    The ground-truth directory is ``Settings.reference``: it is a scoring setting that ``lipsync score`` shares.
    """

    videos: tuple[str, ...] = setting(
        (),
        "a directory (searched recursively), file or glob of videos to gate; repeatable",
        more="Each video becomes a gate item.",
        metavar="PATH",
        kind="list of paths",
    )
    baseline: str | None = setting(
        None, "baseline file for the [regression rules](#regression-rules)", commands=("gate",), metavar="PATH"
    )
    json: str | None = setting(None, "write the results as JSON (the `lipsync score --json` schema)", metavar="PATH")
    html: str | None = setting(  # see ``reports.html``
        None, "write the HTML report (`index.html` and its plots) into this directory", metavar="DIR"
    )
    update_baseline: bool = setting(
        False, "write the baseline from the scores (needs a baseline file)", commands=("gate",)
    )
    no_cache: bool = setting(False, "score every video again instead of replaying results from pytest's cache")
    allow_no_videos: bool = setting(
        False,
        "let a videos folder or glob that holds no video pass (by default it fails the run)",
        more="A folder that does not exist is always a usage error.",
    )
    shard: str | None = setting(  # see ``sharding``; "slurm" is read from the environment by ``resolution``
        None,
        "this job's share of the videos to gate or score, `i/n` (balanced by file size, stable), or `slurm`: "
        "the share of this Slurm array task (`SLURM_ARRAY_TASK_*`)",
        more="See [scale-out.md](scale-out.md#several-ci-runners-shard-merge-gate) and "
        "[dataset-scale.md](dataset-scale.md#slurm-job-arrays).",
        commands=("score",),
        metavar="I/N",
        kind='`"i/n"` or `"slurm"`',
    )
    gpus: str | None = setting(  # see ``placement``
        None,
        "device ordinals (e.g. 0,2) that xdist workers are spread over, one device per worker",
        more="See [scale-out.md](scale-out.md#one-machine-several-gpus-pytest--n).",
        unset="every visible device",
        metavar="IDS",
        kind='`"0,2"`',
    )

    def __post_init__(self) -> None:
        from pytest_lipsync.scale.placement import parse_gpus
        from pytest_lipsync.scale.sharding import Shard

        if self.shard is not None:
            Shard.parse(self.shard)
        if self.gpus is not None:
            parse_gpus(self.gpus)


@dataclass(frozen=True)
class AllowList:
    """The gate's allow-list, declared as a setting like the others; ``GateRules.allow`` holds its resolved value
    (checked against the error kinds by ``resolution``), and overrides may replace it per glob."""

    allow: tuple[str, ...] = setting(
        (),
        "error kind that makes an unscorable video an expected failure (xfail) instead of a failure; repeatable",
        more="Only real [error kinds](errors.md) are accepted.",
        commands=("gate",),
        metavar="KIND",
        kind="list of error kinds",
    )


# The dataclasses whose fields are the keys, in the order the reference page lists them.
OWNERS: tuple[type, ...] = (Settings, RunOptions, Thresholds, AllowList)


def flat_keys() -> dict[str, Any]:
    """Every scalar key a layer may set (top level or threshold), with the type its value must have."""
    return {key: hint for owner in OWNERS for key, hint in hints(owner).items()}


def read_table(path: Path) -> Mapping[str, Any] | None:
    """The ``[tool.lipsync]`` table of ``path``; ``None`` when the file or the table is absent."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read ({exc})", path=path) from None
    if "lipsync" not in text:
        return None  # every pytest run of every project comes here: skip parsing when it cannot have the table
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(  # tomllib's message ends with "(at line L, column C)"
            f"is not valid TOML: {exc}",
            path=path,
            hint="Fix the syntax there; pytest-lipsync reads [tool.lipsync] from it",
        ) from None
    table = document.get("tool", {}).get("lipsync")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"[{TABLE}] must be a table", path=path)
    return table


@cache
def hints(owner: type) -> dict[str, Any]:
    """The owner dataclass's fields and their resolved types (annotations are strings here)."""
    resolved = typing.get_type_hints(owner)
    return {f.name: resolved[f.name] for f in fields(owner)}
