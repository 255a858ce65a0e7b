"""What several ``lipsync`` subcommands share: the settings as options (made from their declarations by
``config.table``), their resolution over the environment and ``pyproject.toml`` (as the pytest gate resolves
them), warnings and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.config.table import add_options, keys_for
from pytest_lipsync.config.table import given as option_values
from pytest_lipsync.display import display_name

if TYPE_CHECKING:
    from pytest_lipsync.config.resolution import LipsyncConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


# The scoring settings `lipsync score` and `lipsync visualize` take as options (their declarations say which);
# anything not given comes from [tool.lipsync] or LIPSYNC_*. `lipsync report` reads them too, none given.
_SCORE_KEYS = keys_for("score", "visualize")


def add_settings_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The settings ``command`` takes, from their declarations (``config.table``). Options default to "not
    given", so that pyproject.toml and the environment fill the rest (DESIGN)."""
    add_options(parser, command)


def score_config(args: argparse.Namespace, here: Path, environ: Mapping[str, str]) -> LipsyncConfig:
    """The options given, over ``LIPSYNC_*``, over the nearest pyproject.toml's ``[tool.lipsync]``: as in pytest.

    The ground-truth directory is made absolute here, from the project's directory as the gate takes it.
    """
    from pytest_lipsync.config.resolution import Layer, environment_warnings, resolve, standard_layers

    warn(environment_warnings(environ))
    project = project_root(here)
    given = option_values(args, _SCORE_KEYS)
    config = resolve(standard_layers(project / "pyproject.toml", environ, Layer("option", given), here), project)
    reference = config.path(config.settings.reference)
    return replace(config, settings=config.settings.replace(reference=None if reference is None else str(reference)))


def warn(messages: Sequence[str]) -> None:
    """Settings that are probably not what was meant: one line each on stderr, and the command goes on."""
    for message in messages:
        print(f"lipsync: warning: {display_name(message)}", file=sys.stderr)


def project_root(start: Path) -> Path:
    """The nearest directory from ``start`` upwards with a ``pyproject.toml``, as pytest finds its rootdir."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start
