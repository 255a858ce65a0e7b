"""How the models run: the dtype of their forward passes and how host batches reach their device.

``precision`` is a faster option, never the default: ``bf16``/``fp16`` run the forward pass under
``torch.autocast`` (the ops it lists, convolutions and matrix products among them, in the low dtype), and the
callers turn the outputs back to float32 before any post-processing, so decoding, NMS and distances keep the
reference's dtypes. fp16 on a CPU is refused: on this project's AVX-512-FP16 CPU (no AMX) S3FD ran slower
in fp16 than in fp32 (README "Faster options"), and a faster option that is slower only misleads.

On CUDA a host batch is copied from pinned memory without blocking the Python thread, so the next batch
is prepared (decoded, resized) while the copy and the forward pass run; elsewhere pinning would only cost.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pytest_lipsync.errors import ConfigError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import numpy as np
    import torch

    from pytest_lipsync.settings import Precision


def check_precision(precision: Precision, device: torch.device) -> None:
    """Refuse a precision the device cannot run faster than fp32, naming what to use instead."""
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            "setting 'precision' is 'fp16', but on the CPU float16 convolutions are slower than float32",
            hint="Use precision = 'bf16' on the CPU (fp16 is for CUDA devices), or leave precision at 'fp32'",
        )


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager[object]:
    """The context a forward pass runs in: nothing for fp32, ``torch.autocast`` to the dtype otherwise."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``: through pinned memory and an asynchronous copy on CUDA, a plain copy elsewhere
    (none on the CPU: the tensor shares the array's memory).

    The copy is ordered on the device's stream before the forward pass that reads it, and every result is
    brought back with a synchronising ``.cpu()``, so no explicit synchronisation is needed."""
    import torch

    host = torch.from_numpy(array)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
