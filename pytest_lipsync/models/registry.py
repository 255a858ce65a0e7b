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
