"""The peer scripts' loops, written out as evaluation scripts run them, to time against the package's metrics.

Evaluation toolkits compute LPIPS with the ``lpips`` package one frame pair per call and FID with
pytorch-fid's ``get_activations``; neither package is a dependency, so their loops are written here step for
step, on the same networks (the same modules, weights and device) as the package's metrics: what differs is
only the work around the forward passes. Each function names the peer code it follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.quality.lpips import LinearHeads

Network = Callable[["torch.Tensor"], "torch.Tensor"]
Trunk = Callable[["torch.Tensor"], Sequence["torch.Tensor"]]

PYTORCH_FID_BATCH = 50  # pytorch-fid's --batch-size default


def lpips_per_frame(trunk: Trunk, heads: LinearHeads, gt: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """``lpips.LPIPS(net, version="0.1")(im2tensor(gt[i]), im2tensor(gen[i]))`` for each frame i, as the package's
    ``lpips_2imgs.py`` does: ``im2tensor`` in NumPy float64, the ScalingLayer, the trunk once per frame,
    ``normalize_tensor``, the squared difference through each linear head, ``spatial_average``, the sum."""
    import torch

    device = next(heads.parameters()).device
    shift = torch.tensor([-0.030, -0.088, -0.188], device=device)[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450], device=device)[None, :, None, None]
    distances = []
    with torch.no_grad():
        for image0, image1 in zip(gt, gen, strict=True):
            in0, in1 = _im2tensor(image0).to(device), _im2tensor(image1).to(device)
            outs0, outs1 = trunk((in0 - shift) / scale), trunk((in1 - shift) / scale)
            value = torch.zeros((), device=device)
            for layer, (feature0, feature1) in enumerate(zip(outs0, outs1, strict=True)):
                difference = (_normalize_tensor(feature0) - _normalize_tensor(feature1)) ** 2
                value = value + heads(layer, difference).mean([2, 3], keepdim=True)
            distances.append(float(value.item()))
    return np.array(distances)


def _im2tensor(image: np.ndarray, cent: float = 1.0, factor: float = 255.0 / 2.0) -> torch.Tensor:
    import torch

    return torch.Tensor((image / factor - cent)[:, :, :, np.newaxis].transpose((3, 2, 0, 1)))


def _normalize_tensor(feature: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    import torch

    norm_factor = torch.sqrt(torch.sum(feature**2, dim=1, keepdim=True))
    return feature / (norm_factor + eps)


def pytorch_fid_activations(
    network: Network, frames: np.ndarray, device: torch.device, batch_size: int = PYTORCH_FID_BATCH
) -> np.ndarray:
    """``get_activations``: ``ToTensor`` per frame, batches stacked as its DataLoader does, ``InceptionV3``
    resizing to 299 and mapping to [-1, 1], the pool3 features copied into one float64 array. ``network`` is
    the Inception trunk."""
    import torch
    import torch.nn.functional as F

    pred_arr = np.empty((len(frames), 0))
    start_idx = 0
    for start in range(0, len(frames), batch_size):
        batch = torch.stack([_to_tensor(frame) for frame in frames[start : start + batch_size]]).to(device)
        with torch.no_grad():
            x = F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False)
            pred = network(2 * x - 1)
        values = pred.cpu().numpy()
        if start_idx == 0:
            pred_arr = np.empty((len(frames), values.shape[1]))
        pred_arr[start_idx : start_idx + values.shape[0]] = values
        start_idx += values.shape[0]
    return pred_arr


def pytorch_fid_statistics(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``calculate_activation_statistics`` after ``get_activations``: ``np.mean`` and ``np.cov(rowvar=False)``."""
    return np.mean(activations, axis=0), np.cov(activations, rowvar=False)


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    """torchvision's ``ToTensor`` on an RGB image: (3, H, W) float32 in [0, 1]."""
    import torch

    image = torch.from_numpy(np.array(frame, np.uint8, copy=True))
    image = image.view(frame.shape[0], frame.shape[1], 3).permute((2, 0, 1)).contiguous()
    return image.to(dtype=torch.get_default_dtype()).div(255)
