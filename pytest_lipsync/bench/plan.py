"""What a benchmark runs: presets, the clip matrix, protocols and setting variants.

A variant is a set of :class:`Settings` changes (``precision=bf16``, ``detect_every=2,fidelity=clean``),
validated through ``Settings.replace`` so that any setting works, including ones added after this module.
The baseline (no change) always runs first, for the speed-up and score change of every other variant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.settings import PIPELINE_ONLY, PROTOCOLS, Settings

BASELINE = "baseline"
# The frame metrics a benchmark can time (``--metrics``): LPIPS with either trunk, FID, CPBD.
METRICS = ("lpips", "lpips-vgg", "fid", "cpbd")
# Settings a variant may not change: they are the benchmark's own axes or where its files come from.
_FIXED_KEYS = frozenset({"protocol", "device", "syncnet_weights", "s3fd_weights", "detector", "reference", "offline"})


@dataclass(frozen=True)
class Variant:
    """A named set of settings changes; the name is how it was written on the command line."""

    name: str
    changes: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dict(self.changes)


@dataclass(frozen=True)
class Preset:
    """A matrix to start from; every command-line option given replaces its part."""

    resolutions: tuple[str, ...]
    seconds: tuple[float, ...]
    faces: tuple[int, ...]
    protocols: tuple[str, ...]
    single_frames: int  # frames for S3FD batched against one frame per call
    bare_calls: int | None  # bare S3FD passes timed per run, paired with its calls (None: one per call)
    metric_frames: int = 16  # frames per clip the frame metrics (--metrics) are timed on


PRESETS: dict[str, Preset] = {
    # Smoke test and CI: about two minutes on two cores.
    "quick": Preset(("720p",), (2.0,), (1,), ("cropped", "pipeline"), single_frames=8, bare_calls=None),
    # The matrix. The bare S3FD figure is scaled from about 32 paired passes per run.
    "full": Preset(
        ("720p", "1080p"),
        (10.0, 60.0),
        (1, 2),
        ("cropped", "pipeline"),
        single_frames=16,
        bare_calls=32,
        metric_frames=64,
    ),
}


def parse_variant(text: str, base: Settings = Settings()) -> Variant:
    """``key=value[,key=value...]``; values are JSON (numbers, true/false, null) or else plain strings.

    Raises :class:`ConfigError` naming the bad key or value, as a settings file would.
    """
    changes: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, raw = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(
                f"variant {text!r}: {item!r} is not key=value", hint="Write e.g. --variant precision=bf16"
            )
        if key in _FIXED_KEYS:
            raise ConfigError(
                f"variant {text!r}: setting {key!r} is fixed by the benchmark",
                hint="Choose protocols with --protocols; weights and device come from the environment",
            )
        changes.append((key, _value(raw.strip())))
    if not changes:
        raise ConfigError(f"variant {text!r} changes nothing", hint="Write e.g. --variant detect_every=2")
    _check(text, dict(changes), base)
    return Variant(text, tuple(changes))


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _check(text: str, changes: dict[str, Any], base: Settings) -> None:
    unknown = sorted(set(changes) - set(Settings.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"variant {text!r}: {', '.join(map(repr, unknown))} is not a setting",
            hint="Use the names of [tool.lipsync] settings, e.g. fidelity=clean",
        )
    try:
        base.replace(**changes).check_detect_every()
    except ConfigError as exc:
        raise ConfigError(f"variant {text!r}: {exc.what}", hint=exc.hint) from exc


def variants(texts: list[str], base: Settings = Settings()) -> tuple[Variant, ...]:
    """The baseline, then each variant as given (duplicates once)."""
    parsed = [parse_variant(text, base) for text in dict.fromkeys(texts)]
    return (Variant(BASELINE), *parsed)


def applies(variant: Variant, protocol: str) -> bool:
    """Whether ``variant`` can change a run of ``protocol``: not when it only sets what the cropped protocol
    never reads (``detect_every``, the tracking limits ...); the benchmark then leaves that run out."""
    return protocol == "pipeline" or not variant.changes or not set(variant.as_dict()) <= PIPELINE_ONLY


def check_protocols(names: list[str]) -> tuple[str, ...]:
    bad = [name for name in names if name not in PROTOCOLS]
    if bad:
        raise ConfigError(f"protocol {bad[0]!r} is not one of {', '.join(PROTOCOLS)}")
    return tuple(dict.fromkeys(names))
