"""How the models run: the dtype of their forward passes and how host batches reach their device.

``precision`` is a faster option, never the default: ``bf16``/``fp16`` run the forward pass under
``torch.autocast`` (the ops it lists, convolutions and matrix products among them, in the low dtype), and the
callers turn the outputs back to float32 before any post-processing, so decoding, NMS and distances keep the
reference's dtypes. fp16 on a CPU is refused: on this project's AVX-512-FP16 CPU (no AMX) S3FD ran slower
in fp16 than in fp32 (docs/benchmarks.md), and a faster option that is slower only misleads. bf16 is
refused where the hardware lacks it (:func:`native_bf16`): emulated, one forward pass of a short clip took
over 1,000 s on a CPU without AVX512_BF16, and a forward pass is the one step the ``timeout`` cannot interrupt.

On CUDA a host batch is copied from pinned memory without blocking the Python thread, so the next batch
is prepared (decoded, resized) while the copy and the forward pass run; elsewhere pinning would only cost.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pytest_lipsync.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    import numpy as np
    import torch

    from pytest_lipsync.settings import Precision


# CPU capabilities (``torch.cpu.get_capabilities``) that compute bfloat16 in hardware: x86's AVX512_BF16 and
# AMX, Arm's BF16 extension (NEON and SVE).
_BF16_CAPABILITIES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")
_AMPERE = 8  # the first CUDA compute capability with bfloat16 tensor cores


def check_precision(precision: Precision, device: torch.device) -> None:
    """Refuse a precision the device cannot run faster than fp32, naming what to use instead."""
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            "setting 'precision' is 'fp16', but on the CPU float16 convolutions are slower than float32",
            hint="Use precision = 'bf16' on the CPU (fp16 is for CUDA devices), or leave precision at 'fp32'",
        )
    if precision == "bf16" and not native_bf16(device):
        what = "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX on x86, BF16 on Arm)"
        if device.type == "cuda":
            what = f"{device} is older than Ampere (compute capability 8.0) and has no bfloat16 tensor cores"
        raise ConfigError(
            f"setting 'precision' is 'bf16', but {what}: emulated, bf16 is many times slower than float32",
            hint="Leave precision at 'fp32' on this machine" + (", or use 'fp16'" if device.type == "cuda" else ""),
        )


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware. Other devices than the CPU and CUDA are left to torch."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= _AMPERE
    if device.type == "cpu":
        return any(_cpu_capabilities().get(name) for name in _BF16_CAPABILITIES)
    return True


def _cpu_capabilities() -> Mapping[str, object]:
    """``torch.cpu.get_capabilities()``; an older torch without it answers for AVX512_BF16 and AMX only."""
    from torch import cpu

    if hasattr(cpu, "get_capabilities"):
        return cpu.get_capabilities()
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return {name: getattr(cpu, probe)() for name, probe in probes.items() if hasattr(cpu, probe)}


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
