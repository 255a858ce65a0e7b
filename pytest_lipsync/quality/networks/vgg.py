"""torchvision's VGG16 feature stack, LPIPS's alternative trunk (``net = "vgg"``).

Layout and state dict keys are those of ``vgg16-397923af.pth``: ``features.N.{weight,bias}`` for the thirteen
3x3 convolutions at torchvision's indices, and ``classifier.{0,3,6}.{weight,bias}`` for the ImageNet
classifier, which LPIPS never runs (checked, not loaded: see :mod:`.base`). LPIPS compares relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3.
"""

from __future__ import annotations

from torch import nn

from pytest_lipsync.quality.networks.base import TappedFeatures, on_meta

# Configuration "D" of the VGG paper up to relu5_3: output channels of each 3x3 convolution, "M" a 2x2 max pool.
_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class VGG16Features(TappedFeatures):
    """``features[0:30]`` of torchvision's VGG16; returns the last ReLU before each pool (``CHANNELS`` channels)."""

    CHANNELS = (64, 128, 256, 512, 512)
    MODEL = "VGG16"

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        super().__init__(layers, taps=(3, 8, 15, 22, 29))

    def released_extras(self) -> dict[str, nn.Module]:
        """The classifier the released file also holds, on the meta device."""
        return {
            "classifier": on_meta(
                lambda: nn.Sequential(
                    nn.Linear(512 * 7 * 7, 4096),
                    nn.ReLU(inplace=True),
                    nn.Dropout(),
                    nn.Linear(4096, 4096),
                    nn.ReLU(inplace=True),
                    nn.Dropout(),
                    nn.Linear(4096, 1000),
                )
            )
        }
