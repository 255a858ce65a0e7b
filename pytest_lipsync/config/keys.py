"""The names and types of pytest-lipsync's keys, and reading them from ``pyproject.toml``.

This is all an inert pytest run needs from the plugin (flags to register, whether the rootdir's
``pyproject.toml`` has a ``[tool.lipsync]`` table), so it stays small: the resolution and validation in
``config`` and the verdicts in ``gate`` are imported only when the plugin is in use. The keys are the
fields of ``Settings``, ``RunOptions`` and ``Thresholds``: a field added to ``Settings`` is at once a
pyproject key, an environment variable and a flag.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.gate.rules import Thresholds
from pytest_lipsync.settings import Settings

TABLE = "tool.lipsync"
# The pytest marker: on a gate item, and on a user's test as the highest-precedence source of settings.
MARKER = "lipsync"
# Threshold key -> the metric it limits; the suffix says the direction (max: lower is better).


@dataclass(frozen=True)
class RunOptions:
    """What a gate run reads and writes, beside how it scores (paths relative to the rootdir).

    The ground-truth directory is ``Settings.reference``: it is a scoring setting that ``lipsync score`` shares.
    """

    videos: tuple[str, ...] = ()
    baseline: str | None = None
    json: str | None = None
    html: str | None = None  # a directory: the HTML report (see ``reports.html``)
    update_baseline: bool = False
    no_cache: bool = False
    allow_no_videos: bool = False  # a videos folder or glob without a video passes instead of failing the run
    shard: str | None = None  # "i/n": this CI job's share of the videos (see ``sharding``)
    gpus: str | None = None  # "0,2": the devices xdist workers are spread over (see ``placement``)

    def __post_init__(self) -> None:
        from pytest_lipsync.scale.placement import parse_gpus
        from pytest_lipsync.scale.sharding import Shard

        if self.shard is not None:
            Shard.parse(self.shard)
        if self.gpus is not None:
            parse_gpus(self.gpus)


def flat_keys() -> dict[str, Any]:
    """Every scalar key a layer may set (top level or threshold), with the type its value must have."""
    return {**hints(Settings), **hints(RunOptions), **hints(Thresholds), "allow": tuple[str, ...]}


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
