"""``--help`` is read in a terminal: plain text, and only options that do something for the command."""

from __future__ import annotations

import argparse

import pytest

from pytest_lipsync.cli.app import _parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"lipsync": parser, **commands.choices}


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_help_has_no_restructuredtext_markup(name: str) -> None:
    text = _subcommands()[name].format_help()
    assert "``" not in text and ":class:" not in text and ":func:" not in text


def test_visualize_offers_only_options_that_change_its_drawing() -> None:
    options = {flag for action in _subcommands()["visualize"]._actions for flag in action.option_strings}
    assert "--protocol" not in options  # only the pipeline protocol has tracks to draw
    assert "--reference" not in options and "--json" not in options and "--workers" not in options
    assert {"--fidelity", "--detector", "--min-track", "--detect-every", "-q"} <= options
