"""The option table: every setting as its declaration says, and the front-ends made from it.

A setting is one dataclass field (``bounds.setting``): its name is the pyproject key, ``LIPSYNC_<KEY>`` its
variable and ``--lipsync-<key>`` its pytest flag; its ``commands`` say which ``lipsync`` subcommands take it as
``--<key>``, typed by the field's annotation (a switch, a choice, a number, a repeatable list); its help text
is the same in ``--help``, ``pytest --help`` and the reference page (``config.reference``). No front-end keeps
a list of its own, so a setting cannot be missing from one or described differently in another.

Options default to "not given" (``None``) everywhere: the defaults live in the dataclasses, and what a command
line leaves out comes from ``LIPSYNC_*`` and ``[tool.lipsync]``. This module is on the plugin's inert path: it
imports no torch, OpenCV or PyAV.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, Literal

from pytest_lipsync.bounds import About, Range, about_of, range_of
from pytest_lipsync.config.keys import OWNERS, hints
from pytest_lipsync.gate.rules import Thresholds
from pytest_lipsync.metrics import BY_NAME, THRESHOLD_METRICS

# The ``--help`` groups a setting's ``group`` names, in the order they are shown; "" is the command's own list.
GROUPS: dict[str, str] = {
    "": "",
    "pipeline": "pipeline protocol (the reference's defaults)",
    "limits": "limits per video (over them, the video fails and the others go on)",
    "fast": "faster options (never the default; results say they were used: not the protocol's numbers)",
    "quality": "frame quality (PSNR, SSIM, LPIPS, FID against ground truth; CPBD on the generated frames)",
}
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_POINTER = re.compile(r"\s*\(\[[^\]]+\]\([^)]*\)\)")  # " ([Weights](#weights))": a page's cross-reference


@dataclass(frozen=True)
class Entry:
    """One setting: its key, the type its value must have, its default, what it declared about itself and the
    range a number must be in."""

    key: str
    hint: Any
    default: Any
    about: About
    accepted: Range | None

    @property
    def help(self) -> str:
        return self.about.help

    @property
    def commands(self) -> tuple[str, ...]:
        return self.about.commands

    @property
    def flag(self) -> str:
        return f"--lipsync-{self.key.replace('_', '-')}"

    @property
    def variable(self) -> str:
        return f"LIPSYNC_{self.key.upper()}"

    @property
    def option(self) -> str:
        return f"--{self.key.replace('_', '-')}"

    @property
    def value_type(self) -> Any:
        """The annotation without its ``None``: a value given on a command line is never "unset"."""
        if typing.get_origin(self.hint) in (typing.Union, types.UnionType):
            return next(arg for arg in typing.get_args(self.hint) if arg is not type(None))
        return self.hint

    @property
    def choices(self) -> tuple[str, ...]:
        kind = self.value_type
        return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()

    @property
    def repeatable(self) -> bool:
        return typing.get_origin(self.value_type) in (tuple, list)

    def help_text(self) -> str:
        """What ``--help`` says: the help without Markdown, and the default where there is one to tell."""
        default = self.default_words()
        return plain(self.help) + ("" if default is None else f" (default: {default})")

    def default_words(self) -> str | None:
        """The default as ``--help`` says it; ``None`` for an off switch or an empty list (nothing to say)."""
        if self.default is None:
            return plain(self.about.unset) or None
        if self.default is False or self.default == ():
            return None
        return str(self.default)


def plain(text: str) -> str:
    """Markdown as a terminal shows it: a bracketed cross-reference goes, other links become their text, code
    and emphasis marks go."""
    return _LINK.sub(r"\1", _POINTER.sub("", text)).replace("`", "").replace("*", "")


@cache
def entries() -> tuple[Entry, ...]:
    """Every setting, in declaration order: ``Settings``, ``RunOptions``, ``Thresholds``, the allow-list."""
    found = []
    for owner in OWNERS:
        resolved = hints(owner)
        for field in fields(owner):
            about = about_of(field) or _derived_about(owner, field.name)
            found.append(Entry(field.name, resolved[field.name], field.default, about, range_of(field)))
    return tuple(found)


def _derived_about(owner: type, key: str) -> About:
    """A threshold says what it is from the metric it limits: one rule for every metric the gate can judge."""
    if owner is not Thresholds:
        raise TypeError(f"{owner.__name__}.{key} is not declared with bounds.setting(...): it has no help text")
    metric = BY_NAME[THRESHOLD_METRICS[key]]
    of = " of all the run's frames" if metric.level == "dataset" else ""
    against = " against ground truth" if metric.needs_reference else ""
    bound = "at least" if metric.higher_is_better else "at most"
    return About(
        f"threshold: {metric.label}{of}{against} must be {bound} this",
        unset="not gated",
        commands=("gate",),
        metavar="LIMIT",
    )


def keys_for(*commands: str) -> tuple[str, ...]:
    """The settings that any of the ``lipsync`` subcommands ``commands`` takes as options."""
    return tuple(entry.key for entry in entries() if set(entry.commands) & set(commands))


def add_options(parser: Any, command: str) -> None:
    """The settings ``command`` takes, as ``argparse`` options in their groups (``parser`` is an
    ``ArgumentParser``); a value argparse cannot convert is its usage error, a value out of range the
    configuration's (named ``--key``)."""
    for group, title in GROUPS.items():
        wanted = [entry for entry in entries() if command in entry.commands and entry.about.group == group]
        if wanted:
            target = parser.add_argument_group(title) if title else parser
            for entry in wanted:
                target.add_argument(entry.option, **_option_spec(entry))


def _option_spec(entry: Entry) -> dict[str, Any]:
    spec: dict[str, Any] = {"default": None, "help": entry.help_text()}
    kind = entry.value_type
    if kind is bool:
        return {**spec, "action": "store_true"}
    if entry.repeatable:
        spec["action"] = "append"
    elif entry.choices:
        return {**spec, "choices": entry.choices}
    elif kind in (int, float):
        spec["type"] = kind
    return {**spec, "metavar": entry.about.metavar} if entry.about.metavar else spec


def given(args: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The settings among ``keys`` that a parsed command line (an ``argparse.Namespace``) gave."""
    return {key: value for key in keys if (value := getattr(args, key, None)) is not None}


def add_flags(group: Any) -> None:
    """Every setting as a ``--lipsync-*`` flag of pytest (``group`` is a ``pytest`` option group). Values stay
    strings: the configuration converts and checks them, naming the flag."""
    for entry in entries():
        group.addoption(entry.flag, **flag_spec(entry))


def flag_spec(entry: Entry) -> Mapping[str, Any]:
    spec: dict[str, Any] = {"default": None, "dest": f"lipsync_{entry.key}", "help": entry.help_text()}
    if entry.value_type is bool:
        return {**spec, "action": "store_true"}
    if entry.repeatable:
        spec["action"] = "append"
    metavar = entry.about.metavar or ("{" + ",".join(entry.choices) + "}" if entry.choices else "VALUE")
    return {**spec, "metavar": metavar}
