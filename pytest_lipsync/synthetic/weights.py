"""Stand-in SyncNet weights in the released format, made from a fixed seed.

Plain random weights are degenerate for LSE: embedding norms dwarf their differences, so the
zero-padded offsets always win. Here both towers' last linear layers share one bias (every embedding
sits near one centre, far from the zero padding) and map their features, through a small ridge
regression fitted on this package's own synthetic clips, onto one direction that tracks the clip's
syllable envelope: mouth opening for the lip tower, loudness for the audio tower. On the synthetic
clips the distance curve then has its minimum at the true audio offset, so shift tests are meaningful.
Numbers computed with these weights test arithmetic only: they say nothing about real lip sync.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.sync.model import SyncNet

EMBEDDING_SIZE = 1024
NOISE_GAIN = 0.05  # the random part of each embedding, beside the fitted direction
SYNC_SCALE = 20.0  # distance per unit of envelope mismatch
CENTRE_SCALE = 0.5
_RIDGE = 100.0
_FIT_SEED = 99


def standin_syncnet_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the released keys and shapes, lacking ``num_batches_tracked`` like the release.

    Random convolutions and BatchNorm statistics of 0 and 1 on 0..255 input give features dominated by
    one constant; so the BatchNorm statistics are calibrated on deterministic smooth frames and
    MFCC-like windows, which keeps every layer's activations near unit scale and input-dependent.
    """
    import torch

    from pytest_lipsync.sync.model import SyncNet

    generator = torch.Generator().manual_seed(seed)
    net = SyncNet()
    for name, value in net.state_dict().items():
        if value.dim() > 1:
            value.copy_(torch.randn(value.shape, generator=generator) / value[0].numel() ** 0.5)
        elif name.endswith("bias"):
            value.copy_(torch.randn(value.shape, generator=generator) * 0.1)
    _calibrate_batch_norm(net, generator)
    centre = torch.randn(EMBEDDING_SIZE, generator=generator, dtype=torch.float64) * CENTRE_SCALE
    direction = torch.randn(EMBEDDING_SIZE, generator=generator, dtype=torch.float64)
    direction /= direction.norm()
    lip, audio = _fit_data(net)
    for head, (features, target) in ((net.netfclip, lip), (net.netfcaud, audio)):
        weights, intercept = _ridge(features, target)
        last = head[3]
        assert isinstance(last, torch.nn.Linear)  # the head's last layer (sync.model._head)
        fitted = SYNC_SCALE * direction[:, None] * weights[None, :]
        last.weight.data = (last.weight.data.double() * NOISE_GAIN + fitted).float()
        last.bias.data = (centre + SYNC_SCALE * intercept * direction).float()
    return {key: value for key, value in net.state_dict().items() if not key.endswith("num_batches_tracked")}


Pairs = tuple["torch.Tensor", "torch.Tensor"]


def _fit_data(net: SyncNet) -> tuple[Pairs, Pairs]:
    """(penultimate features, envelope at the centre frame) per window, for each tower, on synthetic clips."""
    import cv2
    import numpy as np
    import python_speech_features
    import torch

    from pytest_lipsync.synthetic.clips import envelope, face_frame, speech

    count = 64
    openings = envelope(count, _FIT_SEED)
    frames = np.stack([cv2.resize(face_frame(96, 96, openings[i], i), (224, 224)) for i in range(count)])
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float()
    audio_windows, targets = [], []
    for seed in range(_FIT_SEED, _FIT_SEED + 2):
        audio = speech(250 / 25 + 0.2, 16000, 1, seed)[0]
        mfcc = python_speech_features.mfcc(audio, 16000).T
        audio_windows.append(np.stack([mfcc[:, 4 * i : 4 * i + 20] for i in range(246)]))
        targets.append(envelope(250, seed)[2:-2])
    with torch.no_grad():
        lip_features = net.netfclip[:3](net.netcnnlip(video[None])[0, :, :, 0, 0].T).double()
        mfcc_windows = torch.from_numpy(np.concatenate(audio_windows)[:, None]).float()
        audio_features = net.netfcaud[:3](net.netcnnaud(mfcc_windows).flatten(1)).double()
    lip_target = torch.from_numpy(targets[0][: len(lip_features)])
    return (lip_features, lip_target), (audio_features, torch.from_numpy(np.concatenate(targets)))


def _ridge(features: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    import torch

    mean = features.mean(0)
    centred = features - mean
    gram = centred.T @ centred + _RIDGE * torch.eye(features.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, centred.T @ (target - target.mean()))
    return weights, float(target.mean() - mean @ weights)


def _calibrate_batch_norm(net: SyncNet, generator: torch.Generator) -> None:
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    coarse = torch.rand((6, 3, 5, 14, 14), generator=generator) * 255
    frames = torch.nn.functional.interpolate(coarse, size=(5, 224, 224), mode="trilinear")
    mfcc = torch.randn((16, 1, 13, 20), generator=generator) * 8
    net.train()
    with torch.no_grad():
        net.forward_lip(frames)
        net.forward_aud(mfcc)
    net.eval()


def standin_syncnet_file(seed: int = 0) -> Path:
    """The stand-in weights as a file, made once per machine and reused while these sources are unchanged.

    Fitting takes several seconds of CPU; tests, xdist workers and benchmarks share the file. Its name
    holds a hash of the code that makes it, so a change to the generators makes a new one.
    """
    import torch

    sources = b"".join(Path(__file__).with_name(name).read_bytes() for name in ("weights.py", "clips.py"))
    key = hashlib.sha256(sources + torch.__version__.encode() + str(seed).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"pytest-lipsync-standin-syncnet-{key}.model"
    if not path.exists():
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(handle)
        torch.save(standin_syncnet_state_dict(seed), temporary)
        os.replace(temporary, path)
    return path
