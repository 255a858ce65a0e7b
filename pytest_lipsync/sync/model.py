"""The SyncNet network of the released ``syncnet_v2.model`` (Chung & Zisserman 2016).

Layer indices matter: they are the state-dict keys of the released file
(``spec/weights/syncnet.keys.txt``), so the ``Sequential`` layouts below keep the pooling and activation
slots of the original even where a slot does nothing (the 1x1 max-pool).

Only this module (and the scoring code that uses it) imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pytest_lipsync.models.resolve import load_resolved

if TYPE_CHECKING:
    from pytest_lipsync.models.resolve import ResolvedWeights

EMBEDDING_SIZE = 1024
LIP_FRAMES = 5
MFCC_COLUMNS = 20


def _audio_tower() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=1, stride=1),
        nn.Conv2d(64, 192, kernel_size=3, padding=1),
        nn.BatchNorm2d(192),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.BatchNorm2d(384),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 512, kernel_size=(5, 4)),
        nn.BatchNorm2d(512),
        nn.ReLU(),
    )


def _lip_tower() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2)),
        nn.BatchNorm3d(96),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(256, 512, kernel_size=(1, 6, 6)),
        nn.BatchNorm3d(512),
        nn.ReLU(inplace=True),
    )


def _head() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(512, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(),
        nn.Linear(512, EMBEDDING_SIZE),
    )


class SyncNet(nn.Module):
    """Audio and lip towers mapping 0.2 s of sound and of mouth to one embedding space."""

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _audio_tower()
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _lip_tower()

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0..255 windows -> (N, 1024)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    def forward_lip_sequence(self, frames: torch.Tensor) -> torch.Tensor:
        """(3, L, 224, 224) consecutive frames -> (L - 4, 1024): one embedding per 5-frame window.

        Only the first convolution looks across time (kernel 5, stride 1); every later layer has a
        temporal kernel of 1. Running the tower over the whole sequence therefore computes exactly the
        windows ``i .. i+4`` without materialising each window's copy of its five frames.
        """
        features = self.netcnnlip(frames.unsqueeze(0))  # (1, 512, L - 4, 1, 1)
        return self.netfclip(features[0, :, :, 0, 0].transpose(0, 1))


def load_syncnet(weights: ResolvedWeights, device: torch.device) -> SyncNet:
    """The network in eval mode on ``device``, filled from a checked state dict.

    The lip tower's 3D convolutions run channels-last: the crops arrive as (L, H, W, 3) uint8, whose
    permuted view is already that layout, and oneDNN's channels-last 3D convolutions were about 1.4x faster
    on the CPU (docs/benchmarks.md), rounding differently by about 1e-6 relative."""
    net = SyncNet()
    load_resolved(net, weights, model="SyncNet")
    net.netcnnlip.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's Module.to overloads omit its memory_format keyword
    return net.eval().to(device)
