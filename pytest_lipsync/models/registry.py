"""The released weights files that the published LSE numbers were computed with.

Size and SHA-256 pin the exact bytes: a file that merely has the right name is not trusted, because
different weights give different scores and nothing else would tell a user that their baseline moved.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightsSpec:
    """One released file: where it comes from and the bytes it must have."""

    name: str
    filename: str
    size: int
    sha256: str
    urls: tuple[str, ...]

    @property
    def env_var(self) -> str:
        """The environment variable that points at a user's own file for this model."""
        return f"LIPSYNC_{self.name.upper()}_WEIGHTS"

    @property
    def setting(self) -> str:
        """The pyproject setting (and, with dashes, the flag) that names an explicit file."""
        return f"{self.name}_weights"

    def describe(self) -> str:
        """The identity a user needs to obtain the file by hand."""
        return f"{self.filename} ({self.size:,} bytes, SHA-256 {self.sha256})"


SYNCNET = WeightsSpec(
    name="syncnet",
    filename="syncnet_v2.model",
    size=54_573_114,
    sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442",
    urls=("http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",),
)

S3FD = WeightsSpec(
    name="s3fd",
    filename="sfd_face.pth",
    size=89_844_381,
    sha256="d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491",
    urls=("https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",),
)

RELEASED: tuple[WeightsSpec, ...] = (SYNCNET, S3FD)

# The networks of the frame quality metrics. They are not in RELEASED, which lists what every LSE run needs
# (fetch-models and doctor walk it): these are fetched only when a quality metric that uses them is asked for.

ALEXNET = WeightsSpec(
    name="alexnet",
    filename="alexnet-owt-7be5be79.pth",
    size=244_408_911,
    sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
)

VGG16 = WeightsSpec(
    name="vgg16",
    filename="vgg16-397923af.pth",
    size=553_433_881,
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
)

# LPIPS v0.1 linear heads: the files the ``lpips`` package ships under lpips/weights/v0.1/.
LPIPS_ALEX = WeightsSpec(
    name="lpips_alex",
    filename="alex.pth",
    size=6_009,
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    urls=("https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",),
)

LPIPS_VGG = WeightsSpec(
    name="lpips_vgg",
    filename="vgg.pth",
    size=7_289,
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    urls=("https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth",),
)

# pytorch-fid's port of the TensorFlow FID Inception (inception-2015-12-05).
FID_INCEPTION = WeightsSpec(
    name="fid_inception",
    filename="pt_inception-2015-12-05-6726825d.pth",
    size=95_628_359,
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    urls=(
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
)

QUALITY: tuple[WeightsSpec, ...] = (ALEXNET, LPIPS_ALEX, VGG16, LPIPS_VGG, FID_INCEPTION)
# LPIPS's (trunk, linear heads) files for each ``lpips_net``.
LPIPS_FILES: dict[str, tuple[WeightsSpec, WeightsSpec]] = {"alex": (ALEXNET, LPIPS_ALEX), "vgg": (VGG16, LPIPS_VGG)}
# What ``lipsync fetch-models --metrics`` fetches for each opt-in metric with a network: LPIPS with its default
# AlexNet trunk, or with VGG16 (``lpips_net = "vgg"``), and FID's Inception. CPBD has no network.
METRIC_FILES: dict[str, tuple[WeightsSpec, ...]] = {
    "lpips": LPIPS_FILES["alex"],
    "lpips-vgg": LPIPS_FILES["vgg"],
    "fid": (FID_INCEPTION,),
}
