"""The accepted range of every numeric setting, declared once, on the setting's own dataclass field.

``facedet_scale: float = bounded(0.25, Range(0, 1, low_open=True))`` is the whole declaration: the owner's
``__post_init__`` calls :func:`check_bounds`, which refuses a value outside its range naming the setting,
and the configuration loader says where the value was written. NaN and infinity are refused everywhere: NaN
compares false with every bound, so a plain ``value <= 0`` test lets it through (a NaN ``timeout`` would
disable the time limit, a NaN threshold fail or pass every video), and a float read from a string may be
``inf`` or ``1e300``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pytest_lipsync.errors import ConfigError

_KEY = "pytest_lipsync.range"


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
        noun = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{noun} from {self.low:g} to {self.high:g}"
        parts = [] if self.low is None else [f"{'>' if self.low_open else '>='} {self.low:g}"]
        parts += [] if self.high is None else [f"<= {self.high:g}"]
        return " ".join([noun, " and ".join(parts)]) if parts else noun


def bounded(default: Any, accepted: Range) -> Any:
    """A dataclass field with its default and its accepted range (``None`` is accepted where it is the default)."""
    return dataclasses.field(default=default, metadata={_KEY: accepted})


def range_of(field: dataclasses.Field[Any]) -> Range | None:
    """The range a field was declared with, if any."""
    return field.metadata.get(_KEY)


def check_bounds(owner: Any) -> None:
    """Refuse the first field of the dataclass instance ``owner`` that is outside its declared range."""
    for field in dataclasses.fields(owner):
        accepted = range_of(field)
        value = getattr(owner, field.name)
        if accepted is None or (value is None and field.default is None):
            continue
        if not accepted.accepts(value):
            raise ConfigError(f"setting {field.name!r} is {value!r}", hint=f"Use {accepted.describe()}")
