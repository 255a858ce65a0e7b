"""Detector plug-ins: ``detector = "package.module:factory"`` replaces S3FD (DESIGN, "Detector plug-in").

The protocol is the one the pipeline calls for every detector, S3FD included: ``detect(frames, indices)``
with ``frames`` a uint8 RGB array (B, H, W, 3) of the 25 fps stream at full resolution and ``indices`` their
frame numbers, returning one float array (K, 5) of x1, y1, x2, y2, score in pixels per frame. A plug-in is
someone else's code, so every answer is checked before tracking sees it: a box in the wrong convention
(normalised, x/y/w/h, of a resized frame) would otherwise produce plausible but wrong scores.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pytest_lipsync.errors import ConfigError

# How far a box may reach past the frame edge, as a fraction of its own width/height: detectors do not clip,
# and a face cut by the edge yields a box partly outside, but never mostly outside.
OUTSIDE_TOLERANCE = 0.5


class Detector(Protocol):
    def detect(self, frames: np.ndarray, indices: np.ndarray) -> Sequence[np.ndarray]: ...


@dataclass(frozen=True)
class CheckedDetector:
    """A plug-in whose every answer is validated; failures are :class:`ConfigError` naming the plug-in."""

    name: str
    inner: Detector

    def detect(self, frames: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
        result = self.inner.detect(frames, indices)
        return _checked_result(result, frames.shape, indices, self.name)


def load_detector(spec: str) -> CheckedDetector:
    """Import ``package.module``, call ``factory()`` and check that the result can ``detect(frames, indices)``."""
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise _error(spec, "is not of the form 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError, or anything the module raises while it is imported
        raise _error(
            spec,
            f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})",
            hint="Install the package that provides it, or make it importable (PYTHONPATH)",
        ) from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise _error(spec, f"module {module_name!r} has no callable {factory_name!r}")
    try:
        detector = factory()
    except Exception as exc:
        raise _error(spec, f"{factory_name}() raised {type(exc).__name__}: {exc}") from exc
    _check_interface(spec, detector)
    return CheckedDetector(spec, detector)


def _check_interface(spec: str, detector: object) -> None:
    detect = getattr(detector, "detect", None)
    if not callable(detect):
        raise _error(spec, f"the factory's result ({type(detector).__name__}) has no detect(frames, indices) method")
    try:
        inspect.signature(detect).bind(None, None)
    except TypeError as exc:
        raise _error(spec, f"detect() cannot be called as detect(frames, indices) ({exc})") from exc
    except ValueError:  # no signature to inspect (a builtin): the first call will tell
        pass


def _checked_result(result: object, shape: tuple[int, ...], indices: np.ndarray, spec: str) -> list[np.ndarray]:
    batch, height, width = shape[:3]
    if not isinstance(result, (Sequence, np.ndarray)):
        raise _error(spec, f"detect() returned a {type(result).__name__}, not a list of (K, 5) box arrays")
    if len(result) != batch:
        raise _error(spec, f"detect() returned {len(result)} box arrays for a batch of {batch} frames")
    return [
        _checked_boxes(boxes, int(index), width, height, spec) for boxes, index in zip(result, indices, strict=True)
    ]


def _checked_boxes(boxes: object, index: int, width: int, height: int, spec: str) -> np.ndarray:
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _error(spec, f"the boxes of frame {index} are not numbers ({exc})") from exc
    if array.size == 0:
        return np.empty((0, 5))
    if array.ndim != 2 or array.shape[1] != 5:
        raise _error(
            spec, f"the boxes of frame {index} have shape {array.shape}, expected (K, 5): x1, y1, x2, y2, score"
        )
    if not np.isfinite(array).all():
        raise _error(spec, f"the boxes of frame {index} contain NaN or infinity")
    x1, y1, x2, y2 = array[:, :4].T
    empty = (x2 <= x1) | (y2 <= y1)
    if empty.any():
        raise _error(
            spec,
            f"box {_row(array, empty)} of frame {index} has x2 <= x1 or y2 <= y1",
            hint="Boxes are corners x1, y1, x2, y2 (not x, y, width, height)",
        )
    margin_x, margin_y = OUTSIDE_TOLERANCE * (x2 - x1), OUTSIDE_TOLERANCE * (y2 - y1)
    outside = (x1 < -margin_x) | (y1 < -margin_y) | (x2 > width + margin_x) | (y2 > height + margin_y)
    if outside.any():
        raise _error(
            spec,
            f"box {_row(array, outside)} of frame {index} lies mostly outside the {width}x{height} frame",
            hint="Boxes are in pixels of the full-resolution frame passed to detect()",
        )
    return array


def _row(array: np.ndarray, mask: np.ndarray) -> list[float]:
    return [round(v, 2) for v in array[np.flatnonzero(mask)[0]].tolist()]


def _error(spec: str, what: str, *, hint: str | None = None) -> ConfigError:
    return ConfigError(f"detector plug-in {spec!r}: {what}", hint=hint, facts={"detector": spec})
