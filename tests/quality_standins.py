"""Stand-in weights, in the released layouts, for the networks of LPIPS (AlexNet trunk and v0.1 heads) and FID
(pytorch-fid's Inception), written once and named by the variables a run finds its files by.

Generated from fixed seeds (the released files cannot be downloaded here): the values test arithmetic and
plumbing, never perception. The seeds are those of tests/test_quality_lpips.py and tests/test_quality_fid.py.
"""

from __future__ import annotations

from pathlib import Path

from pytest_lipsync.models.registry import ALEXNET, FID_INCEPTION, LPIPS_ALEX
from pytest_lipsync.quality.networks.alexnet import AlexNetFeatures
from pytest_lipsync.quality.networks.base import on_meta
from pytest_lipsync.quality.networks.inception import FIDInceptionV3
from pytest_lipsync.synthetic.networks import save_state_dict, standin_heads_state_dict, standin_network_state_dict


def write_quality_weights(directory: Path) -> dict[str, Path]:
    """``LIPSYNC_<NAME>_WEIGHTS`` -> a stand-in file, for AlexNet, the LPIPS AlexNet heads and the FID Inception."""
    directory.mkdir(parents=True, exist_ok=True)
    alexnet = on_meta(AlexNetFeatures)
    files = {
        ALEXNET.env_var: (standin_network_state_dict(alexnet, seed=1), "alexnet.pth"),
        LPIPS_ALEX.env_var: (standin_heads_state_dict(alexnet.CHANNELS, seed=2), "lpips_alex.pth"),
        FID_INCEPTION.env_var: (standin_network_state_dict(on_meta(FIDInceptionV3), seed=3), "inception.pth"),
    }
    return {variable: save_state_dict(state, directory / name) for variable, (state, name) in files.items()}
