"""LPIPS per frame against ground truth, equal to the ``lpips`` package's version 0.1 (Zhang et al. 2018).

``lpips.LPIPS(net=..., version="0.1", lpips=True, spatial=False)(x0, x1)`` on frames read with its
``im2tensor``, written out:

1. 8-bit RGB to [-1, 1]: ``x / 127.5 - 1`` in float64, rounded to float32 (``im2tensor``);
2. the ScalingLayer: ``(x - shift) / scale`` per channel, shift (-0.030, -0.088, -0.188), scale (0.458, 0.448,
   0.450), float32 (the trunk's ImageNet normalisation expressed on [-1, 1]);
3. the trunk's five tapped activations for both frames (AlexNet by default, VGG16 with ``net = "vgg"``);
4. each unit-normalised across channels at every position: ``f / (sqrt(sum_c f^2) + 1e-10)``;
5. the squared difference of the two, weighted by the layer's linear head (a 1x1 convolution to one channel,
   no bias, the released v0.1 weights) and averaged over positions;
6. the five layer values summed in order.

Lower is better; identical frames give exactly 0. The trunk runs once per batch on the generated and the
reference frames together (2B frames in one forward pass); what LPIPS adds to it is a table lookup for steps
1 and 2 and elementwise work on the activations, done in place. The trunk and the heads come from two
released files each verified on its own: torchvision's ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``,
and the package's ``weights/v0.1/alex.pth`` or ``vgg.pth``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.models.registry import LPIPS_FILES, WeightsSpec
from pytest_lipsync.models.resolve import ResolvedWeights, load_resolved
from pytest_lipsync.models.runtime import to_device
from pytest_lipsync.quality.color import check_pair
from pytest_lipsync.quality.networks.alexnet import AlexNetFeatures
from pytest_lipsync.quality.networks.base import TappedFeatures, load_released
from pytest_lipsync.quality.networks.vgg import VGG16Features
from pytest_lipsync.quality.settings import LPIPS_NETS, LpipsNet

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# (trunk, linear heads) of each variant.
WEIGHTS: dict[str, tuple[WeightsSpec, WeightsSpec]] = LPIPS_FILES
TRUNKS: dict[str, Callable[[], TappedFeatures]] = {"alex": AlexNetFeatures, "vgg": VGG16Features}


class LinearHeads(nn.Module):
    """One 1x1 convolution per tapped layer, keyed ``lin{k}.model.1.weight`` as in the released v0.1 files.

    Index 1 because the heads were trained behind a dropout at index 0, which inference does not run.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        for layer, count in enumerate(channels):
            head = nn.Module()
            head.model = nn.Sequential(OrderedDict([("1", nn.Conv2d(count, 1, kernel_size=1, bias=False))]))
            self.add_module(f"lin{layer}", head)

    def forward(self, layer: int, squared_difference: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"lin{layer}").model(squared_difference)


class LPIPS(nn.Module):
    """Trunk and heads: two (B, H, W, 3) uint8 RGB batches -> (B,) float32 distances (module docstring).

    Steps 1 and 2 map every 8-bit level of a channel to one float32, so they are done once, for the 256 levels
    of each channel, in the package's own arithmetic (float64 ``im2tensor`` rounded to float32, then the
    float32 ScalingLayer), and frames are looked up in that table: the trunk sees the very values the
    package feeds it, at the cost of one gather.
    """

    levels: torch.Tensor
    channel_offsets: torch.Tensor

    def __init__(self, trunk: TappedFeatures, heads: LinearHeads) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = heads
        levels = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).float()
        scaled = (levels - torch.tensor(SHIFT).view(3, 1)) / torch.tensor(SCALE).view(3, 1)
        self.register_buffer("levels", scaled.flatten(), persistent=False)  # channel c, level v at 256 c + v
        self.register_buffer("channel_offsets", torch.arange(3) * 256, persistent=False)

    def forward(self, frames0: torch.Tensor, frames1: torch.Tensor) -> torch.Tensor:
        """Inference only: the tapped activations, which the trunk no longer needs, are normalised in place."""
        scaled = self.levels[torch.cat([frames0, frames1]).long() + self.channel_offsets].permute(0, 3, 1, 2)
        total = torch.zeros((), device=scaled.device)
        for layer, features in enumerate(self.trunk(scaled)):
            unit = features.div_(torch.linalg.vector_norm(features, dim=1, keepdim=True).add_(EPS))
            first, second = unit.chunk(2)
            total = total + self.heads(layer, first.sub_(second).square_()).mean(dim=(2, 3), keepdim=True)
        return total[:, 0, 0, 0]


def load_lpips(net: LpipsNet, trunk: ResolvedWeights, heads: ResolvedWeights, device: str = "cpu") -> LPIPS:
    """LPIPS in eval mode on ``device`` from checked trunk and head files (``WEIGHTS[net]`` are the released ones)."""
    if net not in LPIPS_NETS:
        raise ConfigError(f"the LPIPS network must be one of {', '.join(LPIPS_NETS)}, not {net!r}")
    features = TRUNKS[net]()
    load_released(features, trunk)
    linear = LinearHeads(features.CHANNELS)
    load_resolved(linear, heads, model=f"LPIPS v0.1 {net} linear heads")
    return LPIPS(features, linear).eval().to(torch.device(device))


def lpips(gt: np.ndarray, gen: np.ndarray, model: LPIPS) -> np.ndarray:
    """Per-frame LPIPS (float64) of two (B, H, W, 3) uint8 RGB batches, on the model's device."""
    check_pair(gt, gen, np.uint8)
    device = model.levels.device
    with torch.inference_mode():
        distances = model(to_device(gt, device), to_device(gen, device))
    return distances.cpu().numpy().astype(np.float64)
