"""Loading a state dict without executing code, and checking it against the architecture.

The released files are plain state dicts, so ``torch.load(weights_only=True)`` reads them; anything that
needs more (a pickled module, a pickle that runs code) is refused rather than trusted. The check is strict
because a half-loaded network still produces numbers, just wrong ones.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.errors import WeightsError, not_a_regular_file

if TYPE_CHECKING:
    import torch


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a plain state dict (tensors keyed by name) with the safe unpickler."""
    import torch

    if not path.is_file():
        raise WeightsError(not_a_regular_file(path) or "does not exist", path=path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            "refused to load: the file is not a plain state dict of tensors, and loading it would run "
            f"code from the file ({_first_line(exc)})",
            path=path,
            hint="Use the released weights file, or save your model with torch.save(model.state_dict(), path)",
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for damaged files
        raise WeightsError(
            f"cannot be read as a PyTorch weights file ({type(exc).__name__}: {_first_line(exc)})",
            path=path,
            hint="The file is damaged or not PyTorch weights: delete it and fetch it again (lipsync fetch-models)",
        ) from exc
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) for k in loaded):
        raise WeightsError(
            f"holds a {type(loaded).__name__}, not a state dict (a mapping of names to tensors)",
            path=path,
        )
    return dict(loaded)


def check_state_dict(
    state: Mapping[str, object],
    expected: Mapping[str, torch.Tensor],
    *,
    path: Path,
    model: str,
    may_lack: Iterable[str] = ("num_batches_tracked",),
) -> None:
    """Raise naming the first key that is missing, unexpected, not a tensor, of the wrong shape or not finite.

    Keys ending in one of ``may_lack`` may be absent: the released SyncNet file predates BatchNorm's
    ``num_batches_tracked`` buffer, which eval mode never reads. A NaN or infinite value anywhere (a diverged
    training run, a damaged export) makes every score NaN, which no gate can judge: refused here, before any
    video is touched.
    """
    import torch

    optional = tuple(may_lack)
    for key, reference in expected.items():
        if key not in state:
            if key.endswith(optional):
                continue
            raise WeightsError(
                f"is not {model} weights: key {key!r} {tuple(reference.shape)} is missing",
                path=path,
                hint=f"Point the setting at a {model} state dict with the released architecture",
            )
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"is not {model} weights: {key!r} is a {type(value).__name__}, not a tensor", path=path)
        if tuple(value.shape) != tuple(reference.shape):
            raise WeightsError(
                f"is not {model} weights: {key!r} has shape {tuple(value.shape)}, expected {tuple(reference.shape)}",
                path=path,
            )
        non_finite = int((~torch.isfinite(value)).sum()) if value.is_floating_point() else 0
        if non_finite:
            raise WeightsError(
                f"is not usable {model} weights: {key!r} holds {non_finite} non-finite values (NaN or infinity) "
                f"of {value.numel()}",
                path=path,
                hint="The file is damaged or comes from a diverged training run: use the released weights "
                "(lipsync fetch-models), or export finite ones",
                facts={"key": key, "non_finite": non_finite},
            )
    for key in state:
        if key not in expected:
            raise WeightsError(f"is not {model} weights: unexpected key {key!r}", path=path)


def load_into(module: torch.nn.Module, path: Path, *, model: str) -> None:
    """Fill ``module`` from the file at ``path`` after the strict check above."""
    state = read_state_dict(path)
    check_state_dict(state, module.state_dict(), path=path, model=model)
    module.load_state_dict(state, strict=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
