"""pytest-lipsync's configuration, resolved once from every source into frozen objects.

Sources, lowest precedence first: defaults, ``[tool.lipsync]`` in the rootdir's ``pyproject.toml``,
``LIPSYNC_*`` environment variables, command-line flags, per-test marker arguments. Each source is a
:class:`Layer` of raw values; :func:`resolve` merges and validates them into a :class:`LipsyncConfig`
holding the scoring :class:`Settings`, the gate's :class:`GateRules` and the run options.

The keys are not listed by hand: they are the fields of ``Settings``, ``RunOptions`` and ``Thresholds``
(see ``keys``), and a value is coerced by its field's type, so a setting added to ``Settings`` needs no
change here. Every error names the key and where it was written; this module does
not import pytest (the plugin turns :class:`ConfigError` into ``pytest.UsageError``).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pytest_lipsync.config.keys import TABLE, RunOptions, Thresholds, flat_keys, hints, read_table
from pytest_lipsync.errors import ConfigError, VideoError
from pytest_lipsync.gate.rules import GateRules, Override, Tolerance
from pytest_lipsync.metrics import BY_NAME, OPT_IN, THRESHOLD_METRICS
from pytest_lipsync.models.registry import QUALITY
from pytest_lipsync.settings import Settings

_SUBTABLES = ("thresholds", "regression", "overrides", "pairs")
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"0", "false", "no", "off"})
SourceKind = Literal["pyproject", "env", "flag", "option", "marker"]
# Run options that are paths: given in the environment or on a command line, they are the caller's.
_PATH_OPTIONS = ("videos", "reference", "baseline", "json", "syncnet_weights", "s3fd_weights")
# LIPSYNC_* variables that are not settings: the weights' cache and download mirrors (``models.resolve``),
# and the test suite's fuzzing knobs. Any other LIPSYNC_* variable that is not a setting's is a typo.
# The frame quality networks' files are named by their own variables (``LIPSYNC_ALEXNET_WEIGHTS``...), not settings.
OTHER_VARIABLES: frozenset[str] = frozenset({"LIPSYNC_HOME", "LIPSYNC_MIRRORS", *(spec.env_var for spec in QUALITY)})
OTHER_PREFIXES: tuple[str, ...] = ("LIPSYNC_FUZZ_",)


@dataclass(frozen=True)
class Layer:
    """One source's raw values, shaped like the ``[tool.lipsync]`` table. ``origin`` names the file or test."""

    kind: SourceKind
    values: Mapping[str, Any]
    origin: str = ""

    def name(self, key: str) -> str:
        """How the user wrote ``key`` in this source, for error messages."""
        if self.kind == "env":
            return f"LIPSYNC_{key.upper()}"
        if self.kind == "flag":
            return f"--lipsync-{key.replace('_', '-')}"
        if self.kind == "option":  # a `lipsync` subcommand's own option
            return f"--{key.replace('_', '-')}"
        if self.kind == "marker":
            return f"@pytest.mark.lipsync({key}=...) on {self.origin}"
        return f"[{TABLE}] {key} in {self.origin}"


@dataclass(frozen=True)
class LipsyncConfig:
    """Everything a run needs: scoring settings, gate rules, run options and explicit reference pairs."""

    settings: Settings = Settings()
    gate: GateRules = GateRules()
    options: RunOptions = RunOptions()
    pairs: Mapping[str, Path] = field(default_factory=dict)
    root: Path = Path(".")

    def path(self, value: str | None) -> Path | None:
        """A configured path, relative ones taken from the rootdir."""
        return None if value is None else self.root / Path(value).expanduser()


def read_pyproject(path: Path) -> Layer | None:
    """The ``[tool.lipsync]`` table of ``path`` as a layer; ``None`` when the file or the table is absent."""
    table = read_table(path)
    return None if table is None else Layer("pyproject", table, str(path))


def env_layer(environ: Mapping[str, str]) -> Layer:
    """``LIPSYNC_<KEY>`` for every scalar key; other ``LIPSYNC_*`` variables (``LIPSYNC_HOME``) are not settings.

    A list is written as ``LIPSYNC_VIDEOS=a:b`` (``os.pathsep``, as for paths) or ``LIPSYNC_ALLOW="x y"``
    (spaces or commas, as ``LIPSYNC_MIRRORS``)."""
    values: dict[str, Any] = {}
    for key, hint in flat_keys().items():
        raw = environ.get(f"LIPSYNC_{key.upper()}")
        if raw is not None:
            values[key] = _env_list(key, raw) if typing.get_origin(hint) in (tuple, list) else raw
    return Layer("env", values)


def environment_warnings(environ: Mapping[str, str]) -> tuple[str, ...]:
    """A message for each ``LIPSYNC_*`` variable that is neither a setting nor one of :data:`OTHER_VARIABLES`:
    ``env_layer`` reads only the settings' names, so a misspelt one would be ignored without a word."""
    settings = {f"LIPSYNC_{key.upper()}" for key in flat_keys()}
    messages = []
    for name in sorted(environ):
        if not name.startswith("LIPSYNC_") or name in settings | OTHER_VARIABLES or name.startswith(OTHER_PREFIXES):
            continue
        # Compared without the shared prefix, which would make every name look close to every other.
        close = difflib.get_close_matches(name[len("LIPSYNC_") :].upper(), [key.upper() for key in flat_keys()], n=1)
        hint = (
            f"did you mean LIPSYNC_{close[0]}?"
            if close
            else ("a setting's variable is LIPSYNC_ and its [tool.lipsync] key in capitals, e.g. LIPSYNC_LSE_D_MAX")
        )
        messages.append(f"{name} is not a pytest-lipsync setting and is ignored ({hint})")
    return tuple(messages)


def standard_layers(pyproject: Path, environ: Mapping[str, str], command_line: Layer, here: Path) -> list[Layer]:
    """pyproject < environment < command line, as the plugin and ``lipsync gate`` both read them; paths
    from the environment and the command line are relative to ``here``, the caller's directory, and paths in
    ``pyproject.toml`` to its own directory (wherever pytest or ``lipsync`` is started from)."""
    table = read_pyproject(pyproject)
    layers = [
        *([] if table is None else [Layer(table.kind, _absolute(table.values, pyproject.parent), table.origin)]),
        Layer("env", _absolute(env_layer(environ).values, here)),
        Layer(command_line.kind, _absolute(command_line.values, here), command_line.origin),
    ]
    return [_shard(layer, environ) for layer in layers]


def _shard(layer: Layer, environ: Mapping[str, str]) -> Layer:
    """``shard`` written as ``i/n`` (spaces dropped), ``"slurm"`` made this Slurm array task's ``i/n``: every
    consumer of the setting, and every report, sees one spelling."""
    from pytest_lipsync.scale.sharding import Shard, slurm_shard

    value = layer.values.get("shard")
    if not isinstance(value, str):
        return layer
    if value.strip().lower() == "slurm":
        try:
            return replace(layer, values={**layer.values, "shard": str(slurm_shard(environ))})
        except ConfigError as exc:
            raise ConfigError(f"{layer.name('shard')} is invalid: {exc.message}", hint=exc.hint) from None
    with contextlib.suppress(ConfigError):  # a malformed one is refused by _check_alone, naming its source
        return replace(layer, values={**layer.values, "shard": str(Shard.parse(value))})
    return layer


def _absolute(values: Mapping[str, Any], base: Path) -> dict[str, Any]:
    fixed = dict(values)
    for key in fixed.keys() & set(_PATH_OPTIONS):
        value = fixed[key]
        if value is not None:
            fixed[key] = [str(base / item) for item in value] if isinstance(value, (list, tuple)) else str(base / value)
    return fixed


def _env_list(key: str, raw: str) -> list[str]:
    parts = raw.split(os.pathsep) if key == "videos" else re.split(r"[,\s]+", raw)
    return [part for part in parts if part]


def resolve(layers: Sequence[Layer], root: Path) -> LipsyncConfig:
    """Merge ``layers`` (lowest precedence first) and validate the result."""
    scalars: dict[str, Any] = {}
    regression: dict[str, Tolerance] = {}
    overrides: tuple[Override, ...] = ()
    pairs: dict[str, Path] = {}
    for layer in layers:
        scalars.update(_layer_scalars(layer))
        regression.update(_regression(layer, layer.values.get("regression", {}), "regression"))
        if "overrides" in layer.values:
            overrides = _overrides(layer, layer.values["overrides"])
        pairs.update(_pairs(layer, layer.values.get("pairs", {})))
    thresholds = _build(Thresholds, scalars)
    gate = GateRules(thresholds, regression, tuple(scalars.get("allow", ())), overrides)
    settings = _build(Settings, scalars).with_metrics(ruled_metrics(gate))
    settings.check_detect_every()
    options = _build(RunOptions, scalars)
    if options.update_baseline and not options.baseline:
        raise ConfigError(
            "update_baseline (--lipsync-update-baseline) is set but no baseline file is configured",
            hint='Set baseline = "lipsync-baseline.json" in [tool.lipsync], or pass --lipsync-baseline PATH',
        )
    return LipsyncConfig(settings, gate, options, pairs, root)


def ruled_metrics(gate: GateRules) -> tuple[str, ...]:
    """The opt-in metrics a rule judges (``lpips_max = 0.2``, ``regression.lpips``, an override's): a rule on a
    metric that is not computed would judge nothing, so writing the rule turns the metric on."""
    ruled = {*gate.thresholds.limits(), *gate.regression}
    for override in gate.overrides:
        ruled |= {THRESHOLD_METRICS[key] for key in override.thresholds} | set(override.regression)
    return tuple(name for name in OPT_IN if name in ruled)


def _layer_scalars(layer: Layer) -> dict[str, Any]:
    """The layer's flat keys, coerced and validated one by one so an error names its own source."""
    keys = flat_keys()
    raw = dict(layer.values)
    thresholds = raw.pop("thresholds", {})
    if not isinstance(thresholds, Mapping):
        raise _error(layer, "thresholds", "must be a table")
    _reject_unknown(layer, thresholds, hints(Thresholds), "thresholds.")
    raw = {key: value for key, value in raw.items() if key not in _SUBTABLES}
    _reject_unknown(layer, raw, keys, "")
    named = {
        **{key: (key, value) for key, value in raw.items()},
        **{k: (f"thresholds.{k}", v) for k, v in thresholds.items()},
    }
    values = {key: _coerce(layer, name, value, keys[key]) for key, (name, value) in named.items()}
    for key, value in values.items():
        _check_alone(layer, named[key][0], key, value)
    return values


def _check_alone(layer: Layer, name: str, key: str, value: Any) -> None:
    """Build the owning object with just this value, so its own validation (ranges included) blames the
    right source; ``name`` is how the source wrote the key (``thresholds.ssim_min``)."""
    if key == "allow":
        _check_kinds(layer, name, value)
    for owner in (Settings, RunOptions, Thresholds):
        if key in hints(owner):
            try:
                owner(**{key: value})
            except ConfigError as exc:
                raise _error(layer, name, f"is invalid: {exc.message}") from None


def _check_kinds(layer: Layer, key: str, kinds: Sequence[str]) -> None:
    """A misspelt kind in ``allow`` would silently never match: only real error kinds are accepted."""
    known = video_error_kinds()
    for kind in kinds:
        if kind not in known:
            raise _error(layer, key, f"names {kind!r}, which is not an error kind (known: {', '.join(sorted(known))})")


def video_error_kinds() -> frozenset[str]:
    """Every ``kind`` a video's error can have: the :class:`VideoError` family, including later additions."""
    found, pending = set(), [VideoError]
    while pending:
        cls = pending.pop()
        found.add(cls.kind)
        pending.extend(cls.__subclasses__())
    return frozenset(found)


def _build(owner: type, scalars: Mapping[str, Any]) -> Any:
    return owner(**{key: value for key, value in scalars.items() if key in hints(owner)})


def _regression(layer: Layer, table: object, prefix: str) -> dict[str, Tolerance]:
    if not isinstance(table, Mapping):
        raise _error(layer, prefix, 'must be a table of metric = "+tolerance"')
    rules = {}
    for metric, raw in table.items():
        try:
            rules[metric] = Tolerance.parse(metric, raw)
        except ValueError as exc:
            raise _error(layer, f"{prefix}.{metric}", str(exc)) from None
        if BY_NAME[metric].level == "dataset":
            raise _error(
                layer,
                f"{prefix}.{metric}",
                f"is a regression rule on {BY_NAME[metric].label}, which is one number per dataset, while a baseline "
                f"holds each video's numbers: gate it with {BY_NAME[metric].threshold_key} instead",
            )
    return rules


def _overrides(layer: Layer, entries: object) -> tuple[Override, ...]:
    """``[[tool.lipsync.overrides]]``: a glob plus threshold keys, ``allow`` and a ``regression`` table."""
    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise _error(layer, "overrides", "must be an array of tables ([[tool.lipsync.overrides]])")
    return tuple(_override(layer, entry, f"overrides[{number}]") for number, entry in enumerate(entries))


def _override(layer: Layer, entry: Mapping[str, Any], label: str) -> Override:
    glob = entry.get("glob")
    if not isinstance(glob, str) or not glob:
        raise _error(layer, f"{label}.glob", 'is required: the videos it applies to, e.g. glob = "hard/*.mp4"')
    thresholds = hints(Thresholds)
    allowed = {**thresholds, "glob": str, "allow": tuple[str, ...], "regression": dict}
    rest = {key: value for key, value in entry.items() if key != "glob"}
    _reject_unknown(layer, rest, allowed, f"{label}.")
    limits = {
        key: _coerce(layer, f"{label}.{key}", value, thresholds[key])
        for key, value in rest.items()
        if key in thresholds
    }
    for key in limits:
        if BY_NAME[THRESHOLD_METRICS[key]].level == "dataset":
            raise _error(
                layer,
                f"{label}.{key}",
                "limits a number of the whole dataset, and an override applies to the videos its glob matches: "
                f"set {key} in [tool.lipsync.thresholds]",
            )
    for key, value in limits.items():
        _check_alone(layer, f"{label}.{key}", key, value)
    allow = _coerce(layer, f"{label}.allow", rest["allow"], tuple[str, ...]) if "allow" in rest else None
    if allow is not None:
        _check_kinds(layer, f"{label}.allow", allow)
    regression = _regression(layer, rest.get("regression", {}), f"{label}.regression")
    return Override(glob, limits, regression, allow, source=layer.name(f"{label}.glob"))


def _pairs(layer: Layer, table: object) -> dict[str, Path]:
    """``[tool.lipsync.pairs]``: video key -> reference file, relative to the pyproject's directory."""
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise _error(layer, "pairs", 'must be a table of "video" = "reference file"')
    base = Path(layer.origin).parent
    return {key: base / value for key, value in table.items()}


def _reject_unknown(layer: Layer, values: Mapping[str, Any], known: Mapping[str, Any], prefix: str) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise _error(
                layer, f"{prefix}{key}", f"is not a pytest-lipsync setting ({hint}known: {', '.join(sorted(known))})"
            )


def _coerce(layer: Layer, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` asks for: TOML values must already have it, strings are parsed."""
    try:
        return _as_type(value, hint)
    except (TypeError, ValueError) as exc:
        raise _error(layer, key, f"must be {exc.args[0]}, not {value!r}") from None


def _as_type(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if value is None or (isinstance(value, str) and value == "" and len(options) < len(args)):
            return None
        return _as_type(value, options[0])
    if origin is Literal:
        if value not in args:
            raise ValueError(f"one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        return _as_sequence(value, args[0] if args else str)
    if hint in (bool, int, float, str):
        return _SCALARS[hint](value)
    return value


def _as_sequence(value: Any, item: Any) -> tuple[Any, ...]:
    """A list, or a single string as a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError("a list")
    return tuple(_as_type(element, item) for element in value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    raise TypeError("true or false")


def _number(convert: Callable[[Any], Any], accepted: tuple[type, ...], description: str) -> Callable[[Any], Any]:
    """A parser taking numbers of the ``accepted`` types (never a bool) or a string ``convert`` can read."""

    def parse(value: Any) -> Any:
        if isinstance(value, accepted) and not isinstance(value, bool):
            return convert(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return convert(value)
        raise TypeError(description)

    return parse


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


_SCALARS = {
    bool: _as_bool,
    int: _number(int, (int,), "a whole number"),
    float: _number(float, (int, float), "a number"),
    str: _as_str,
}


def _error(layer: Layer, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{layer.name(key)} {problem}")
