"""torchvision's AlexNet feature stack, the trunk LPIPS measures with by default.

Layout and state dict keys are those of ``alexnet-owt-7be5be79.pth``: ``features.{0,3,6,8,10}.{weight,bias}``
for the five convolutions, and ``classifier.{1,4,6}.{weight,bias}`` for the ImageNet classifier, which LPIPS
never runs (checked, not loaded: see :mod:`.base`). LPIPS compares the outputs of the five ReLUs.
"""

from __future__ import annotations

from torch import nn

from pytest_lipsync.quality.networks.base import TappedFeatures, on_meta


class AlexNetFeatures(TappedFeatures):
    """``features[0:12]`` of torchvision's AlexNet; returns relu1 ... relu5 (``CHANNELS`` channels)."""

    CHANNELS = (64, 192, 384, 256, 256)
    MODEL = "AlexNet"

    def __init__(self) -> None:
        layers = [
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        ]
        super().__init__(layers, taps=(1, 4, 7, 9, 11))

    def released_extras(self) -> dict[str, nn.Module]:
        """The classifier the released file also holds, on the meta device."""
        return {
            "classifier": on_meta(
                lambda: nn.Sequential(
                    nn.Dropout(),
                    nn.Linear(256 * 6 * 6, 4096),
                    nn.ReLU(inplace=True),
                    nn.Dropout(),
                    nn.Linear(4096, 4096),
                    nn.ReLU(inplace=True),
                    nn.Linear(4096, 1000),
                )
            )
        }
