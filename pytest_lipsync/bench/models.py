"""Which weights a benchmark runs with, and the detector wrapper that counts what S3FD was asked to do.

The released weights are used when they are on this machine (no download); otherwise deterministic stand-in
weights, whose timings are real and whose scores mean nothing, so every output says so. Stand-in S3FD finds
no face on the generated clips, so on those the wrapper returns the drawn faces' marker boxes after S3FD has
run at full cost: tracking, cropping and SyncNet then work on real tracks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import torch

    from pytest_lipsync.faces.detector import Detector

STANDIN_NOTICE = "stand-in weights: timings only"
# The metrics a benchmark can time whose network is LPIPS, with the trunk each one runs.
LPIPS_NETS = {"lpips": "alex", "lpips-vgg": "vgg"}


@dataclass(frozen=True)
class BenchWeights:
    syncnet: str
    s3fd: str
    standin: bool


def bench_weights(directory: Path, standin: bool = False) -> BenchWeights:
    """The released weights when both are found here (never downloaded), else stand-ins written to ``directory``."""
    from pytest_lipsync.models.registry import S3FD, SYNCNET
    from pytest_lipsync.models.resolve import locate_weights

    if not standin:
        syncnet, s3fd = (locate_weights(spec) for spec in (SYNCNET, S3FD))
        if syncnet is not None and s3fd is not None and not syncnet.custom and not s3fd.custom:
            return BenchWeights(str(syncnet.path), str(s3fd.path), standin=False)
    return BenchWeights(str(standin_syncnet()), str(standin_s3fd(directory)), standin=True)


def standin_syncnet() -> Path:
    from pytest_lipsync.synthetic.weights import standin_syncnet_file

    return standin_syncnet_file()


def standin_s3fd(directory: Path) -> Path:
    from pytest_lipsync.synthetic.faces import standin_s3fd_state_dict

    return _written(directory / "standin_sfd_face.pth", standin_s3fd_state_dict)


def standin_metric_weights(directory: Path, metrics: Sequence[str]) -> dict[str, str]:
    """Stand-in weights for the networks of ``metrics`` (see ``plan.METRICS``), written once per
    benchmark directory, by role: ``lpips-trunk``, ``lpips-heads``, ``lpips-vgg-trunk``, ..., ``fid``.

    Always stand-ins, released weights or not: a benchmark reports these metrics' cost, which the values of
    their weights do not change, and none of their values.
    """
    import torch

    from pytest_lipsync.quality.lpips import TRUNKS
    from pytest_lipsync.quality.networks.inception import FIDInceptionV3
    from pytest_lipsync.synthetic.networks import standin_heads_state_dict, standin_network_state_dict

    files: dict[str, str] = {}
    for metric in metrics:
        net = LPIPS_NETS.get(metric)
        if net is not None:
            with torch.device("meta"):
                trunk = TRUNKS[net]()
            files[f"{metric}-trunk"] = str(
                _written(directory / f"standin_{net}_trunk.pth", partial(standin_network_state_dict, trunk))
            )
            files[f"{metric}-heads"] = str(
                _written(directory / f"standin_{net}_heads.pth", partial(standin_heads_state_dict, trunk.CHANNELS))
            )
        elif metric == "fid":
            with torch.device("meta"):
                inception = FIDInceptionV3()
            files["fid"] = str(
                _written(directory / "standin_fid_inception.pth", partial(standin_network_state_dict, inception))
            )
    return files


def _written(path: Path, state: Callable[[], dict[str, torch.Tensor]]) -> Path:
    """``state()`` saved at ``path`` once per benchmark directory, renamed into place so that concurrent children
    never read half a file."""
    import torch

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        torch.save(state(), partial)
        partial.replace(path)
    return path


@dataclass
class CountingDetector:
    """Wraps the run's detector: counts calls and frames per input shape.

    With ``markers`` the boxes are the marker boxes of the generated clip (the detector still runs). Finding
    the markers (26 ms per 1080p frame) is not the product's work: ``harness_seconds`` says how long it took,
    and the run's figures leave it out.
    """

    inner: Detector
    markers: bool
    calls: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (batch, height, width) -> calls
    harness_seconds: float = 0.0

    def detect(self, frames: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
        shape = (len(frames), frames.shape[1], frames.shape[2])
        self.calls[shape] = self.calls.get(shape, 0) + 1
        boxes = list(self.inner.detect(frames, indices))
        if not self.markers:
            return boxes
        from pytest_lipsync.synthetic.faces import marker_boxes

        started = time.perf_counter()
        boxes = [marker_boxes(frame) for frame in frames]
        self.harness_seconds += time.perf_counter() - started
        return boxes

    @property
    def frames(self) -> int:
        return sum(batch * count for (batch, _, _), count in self.calls.items())
