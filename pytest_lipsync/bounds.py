"""Every setting declared once, on its own dataclass field: default, accepted range and help text.

``facedet_scale: float = setting(0.25, "scale at which S3FD sees the frames", Range(0, 1, low_open=True))`` is
the whole declaration. The owner's ``__post_init__`` calls :func:`check_bounds`, which refuses a value outside
its range naming the setting, and the configuration loader says where the value was written; the pyproject
key, the ``LIPSYNC_*`` variable, the ``--lipsync-*`` flag, the ``lipsync`` commands' options and the reference
page are all made from the field by ``config.table``, so none of them has a list to keep in step.

NaN and infinity are refused everywhere: NaN compares false with every bound, so a plain ``value <= 0`` test
lets it through (a NaN ``timeout`` would disable the time limit, a NaN threshold fail or pass every video),
and a float read from a string may be ``inf`` or ``1e300``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pytest_lipsync.errors import ConfigError

_KEY = "pytest_lipsync.range"
_ABOUT = "pytest_lipsync.about"


@dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` to ``high`` (either may be open-ended: ``None``); ``low_open`` excludes
    ``low`` itself; ``integer`` asks for an ``int`` (never a ``bool``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False

    def accepts(self, value: object) -> bool:
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        """What the range accepts, as "Use ..." completes it: "a finite number > 0 and <= 1"."""
        return self.phrase("an integer" if self.integer else "a finite number")

    def phrase(self, noun: str) -> str:
        """``noun`` with the limits: "number from 0 to 1", "integer > 0"; the noun alone when unlimited."""
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{noun} from {self.low:g} to {self.high:g}"
        parts = [] if self.low is None else [f"{'>' if self.low_open else '>='} {self.low:g}"]
        parts += [] if self.high is None else [f"<= {self.high:g}"]
        return " ".join([noun, " and ".join(parts)]) if parts else noun


@dataclass(frozen=True)
class About:
    """What a setting is for, and where it is offered beside the pyproject key, variable and pytest flag.

    ``help`` is a phrase (no capital, no full stop) that every front-end shows; Markdown links and code in it
    are kept on the reference page and dropped from ``--help``. ``more`` is said on the page only. ``unset``
    says what a ``None`` default means ("the released weights"). ``commands`` are the ``lipsync`` subcommands
    that take it as ``--key-with-hyphens``, in ``group`` of their ``--help`` (``config.table.GROUPS``).
    ``metavar`` names the value in ``--help``; ``kind`` the type on the page where the annotation says too
    little ("list of paths").
    """

    help: str
    more: str = ""
    unset: str = ""
    commands: tuple[str, ...] = ()
    group: str = ""
    metavar: str | None = None
    kind: str | None = None


# The `lipsync` commands that take the scoring settings as options.
SCORING = ("score", "visualize")


def setting(
    default: Any,
    help: str,
    accepted: Range | None = None,
    *,
    more: str = "",
    unset: str = "",
    commands: tuple[str, ...] = (),
    group: str = "",
    metavar: str | None = None,
    kind: str | None = None,
) -> Any:
    """A dataclass field that is a setting: its default, its help, its accepted range (numbers), and the
    commands and ``--help`` group that offer it (see :class:`About`)."""
    about = About(help, more, unset, tuple(commands), group, metavar, kind)
    metadata: dict[str, Any] = {_ABOUT: about} if accepted is None else {_ABOUT: about, _KEY: accepted}
    return dataclasses.field(default=default, metadata=metadata)


def bounded(default: Any, accepted: Range) -> Any:
    """A dataclass field with its default and its accepted range (``None`` is accepted where it is the default)."""
    return dataclasses.field(default=default, metadata={_KEY: accepted})


def range_of(field: dataclasses.Field[Any]) -> Range | None:
    """The range a field was declared with, if any."""
    return field.metadata.get(_KEY)


def about_of(field: dataclasses.Field[Any]) -> About | None:
    """What :func:`setting` declared about a field, if it was declared with it."""
    return field.metadata.get(_ABOUT)


def check_bounds(owner: Any) -> None:
    """Refuse the first field of the dataclass instance ``owner`` that is outside its declared range."""
    for field in dataclasses.fields(owner):
        accepted = range_of(field)
        value = getattr(owner, field.name)
        if accepted is None or (value is None and field.default is None):
            continue
        if not accepted.accepts(value):
            raise ConfigError(f"setting {field.name!r} is {value!r}", hint=f"Use {accepted.describe()}")
