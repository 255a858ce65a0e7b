"""Stand-in weights for the quality metrics' networks, in the released files' layouts, from a fixed seed.

Every key and shape of the released file is there, so the strict loader treats a stand-in exactly like the
release. Convolutions and linear layers get He-scaled Gaussian weights (activations keep their scale through
the ReLUs), BatchNorm plausible statistics, LPIPS heads non-negative weights as trained ones are. The parts the
metrics never run (torchvision's classifiers, Inception's logits) are zeros with zero strides: the real shapes
in a few bytes, where the release spends hundreds of megabytes.

Values computed with these weights test arithmetic, layouts and loading only: they say nothing about
perceptual quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.quality.networks.base import ReleasedNetwork


def standin_network_state_dict(net: ReleasedNetwork, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys and shapes of ``net``'s released file."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, value in net.state_dict().items():
        state[key] = _standin_tensor(key, value, generator)
    for name, extra in net.released_extras().items():
        for key, value in extra.state_dict().items():
            state[f"{name}.{key}"] = torch.zeros((), dtype=value.dtype).expand(value.shape)
    return state


def standin_heads_state_dict(channels: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """LPIPS v0.1 linear heads (``lin{k}.model.1.weight``, shape (1, C, 1, 1)), non-negative."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return {
        f"lin{layer}.model.1.weight": torch.rand((1, count, 1, 1), generator=generator) / count
        for layer, count in enumerate(channels)
    }


def save_state_dict(state: dict[str, torch.Tensor], path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _standin_tensor(key: str, value: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    import torch

    shape = value.shape
    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=value.dtype)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=generator)
    if value.dim() > 1:  # convolution or linear weight
        return torch.randn(shape, generator=generator) * (2 / value[0].numel()) ** 0.5
    if key.endswith("weight"):  # BatchNorm scale
        return 1 + 0.1 * torch.randn(shape, generator=generator)
    return 0.1 * torch.randn(shape, generator=generator)
