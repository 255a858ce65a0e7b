"""What the feature networks share: the released-file layout they load from, and tapping activations.

The released files hold more than the metrics run: torchvision's AlexNet and VGG16 files carry their ImageNet
classifiers (most of their bytes), pytorch-fid's Inception its 1008-way logits layer. The strict check must
still see those keys, or a file of another architecture with the same feature layers would pass. So a network
names those parts (:meth:`ReleasedNetwork.released_extras`), built on the ``meta`` device (shapes without
storage); :func:`load_released` checks them key for key and shape for shape beside the used ones with
:func:`~pytest_lipsync.models.resolve.load_resolved`, the loader SyncNet's weights go through, and drops them:
they never take memory on the device nor time in the forward pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

import torch
from torch import nn

from pytest_lipsync.models.resolve import ResolvedWeights, load_resolved

Module = TypeVar("Module", bound=nn.Module)


class ReleasedNetwork(nn.Module):
    """A network laid out like its released state dict, all its tensors in named children.

    ``MODEL`` names it in errors. Tensors held directly by the module would escape the check of
    :func:`load_released`, which sees the children only, so subclasses keep them in children.
    """

    MODEL: ClassVar[str]

    def released_extras(self) -> dict[str, nn.Module]:
        """Children the released file holds beyond this network, on the meta device; none by default."""
        return {}


def on_meta(build: Callable[[], Module]) -> Module:
    """``build()`` with parameters of the right shapes and no storage: released layers a metric never runs."""
    with torch.device("meta"):
        return build()


def load_released(net: ReleasedNetwork, weights: ResolvedWeights) -> None:
    """Fill ``net`` from ``weights`` after checking the file against ``net`` plus its released extras.

    The check runs on one module whose children are ``net``'s (shared, so loading fills ``net``) and the
    extras (meta, so loading them is a no-op).
    """
    if [*net.parameters(recurse=False), *net.buffers(recurse=False)]:
        raise ValueError(f"{type(net).__name__} holds tensors outside its children, which the check would not see")
    layout = nn.Module()
    for name, child in [*net.named_children(), *net.released_extras().items()]:
        layout.add_module(name, child)
    with warnings.catch_warnings():
        # Loading into a meta tensor is the documented no-op this relies on; say nothing about it.
        warnings.filterwarnings("ignore", message=r".*copying from a non-meta parameter.*", category=UserWarning)
        load_resolved(layout, weights, model=net.MODEL)


class TappedFeatures(ReleasedNetwork):
    """A ``features`` stack whose outputs after the layers ``taps`` are returned, in order.

    Subclasses build ``features`` with torchvision's indices, so its state dict keys are the released ones
    (``features.0.weight``...). Layers after the last tap are not built: no metric reads them.
    ``CHANNELS``: the channels of each tapped output.
    """

    CHANNELS: ClassVar[tuple[int, ...]]

    def __init__(self, layers: Sequence[nn.Module], taps: Sequence[int]) -> None:
        super().__init__()
        if len(layers) != taps[-1] + 1:
            raise ValueError(f"{len(layers)} layers, but the last tap is layer {taps[-1]}")
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        tapped = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                tapped.append(x)
        return tapped
