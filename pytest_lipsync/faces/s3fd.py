"""S3FD, the reference pipeline's face detector (docs/protocol.md), batched over frames.

The network reproduces the released ``sfd_face.pth`` architecture key for key so that the file loads
unchanged. The post-processing follows the reference's arithmetic step by step (float32 where it works in
float32, float64 where it works in float64, the same tie order), because a detection that moves by one ulp
can flip an IoU test in tracking and change a published number.

One exact shortcut: greedy NMS only ever lets a higher-ranked box suppress a lower-ranked one, so the boxes
the caller keeps (score > ``conf_th``) are decided by boxes that also score above ``conf_th``. The first NMS
pass therefore runs on those candidates only, instead of on every prior above 0.05; the top-5000 and
keep-750 caps select the same boxes because every candidate above ``conf_th`` outranks every one below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pytest_lipsync.models.loading import load_into
from pytest_lipsync.models.resolve import ResolvedWeights, load_resolved
from pytest_lipsync.settings import Precision

STEPS = (4, 8, 16, 32, 64, 128)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
VARIANCES = (0.1, 0.2)
CANDIDATE_THRESHOLD = 0.05
FIRST_NMS_IOU = 0.3
FIRST_NMS_CANDIDATES = 5000
FIRST_NMS_KEEP = 750
SECOND_NMS_IOU = 0.1
RGB_MEAN = (123.0, 117.0, 104.0)

# VGG16 as the released file numbers it: channel counts, "M" a 2x2 max pool, "C" the same with ceil_mode.
_VGG_PLAN: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512, "M"
)  # fmt: skip
# Index in ``vgg`` after which a source feature map is taken through the named L2 norm.
_NORMED_SOURCES = {15: "L2Norm3_3", 22: "L2Norm4_3", 29: "L2Norm5_3"}
_SOURCE_CHANNELS = (256, 512, 512, 1024, 512, 256)

FeatureSizes = tuple[tuple[int, int], ...]


class L2Norm(nn.Module):
    """Per-position channel normalisation with a learned per-channel gain (SSD's conv4_3 trick)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return self.weight.view(1, -1, 1, 1) * torch.div(x, norm)


@dataclass(frozen=True)
class S3FDHeads:
    """Raw network output: per-prior box offsets and class logits, and the feature-map sizes.

    ``loc`` is (B, P, 4), ``conf`` (B, P, 2) with the background logit already maxed out over the first
    head's three background channels; ``feature_sizes`` gives (rows, cols) per source, which fixes the priors.
    """

    loc: torch.Tensor
    conf: torch.Tensor
    feature_sizes: FeatureSizes


class S3FDNet(nn.Module):
    """The S3FD network with exactly the module names and shapes of the released state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.vgg = nn.ModuleList(_vgg_layers())
        self.L2Norm3_3 = L2Norm(256, 10.0)
        self.L2Norm4_3 = L2Norm(512, 8.0)
        self.L2Norm5_3 = L2Norm(512, 5.0)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1),
                nn.Conv2d(256, 512, 3, stride=2, padding=1),
                nn.Conv2d(512, 128, 1),
                nn.Conv2d(128, 256, 3, stride=2, padding=1),
            ]
        )
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, padding=1) for c in _SOURCE_CHANNELS])
        self.conf = nn.ModuleList(
            [nn.Conv2d(c, 4 if k == 0 else 2, 3, padding=1) for k, c in enumerate(_SOURCE_CHANNELS)]
        )

    def forward(self, x: torch.Tensor) -> S3FDHeads:
        sources = []
        for index, layer in enumerate(self.vgg):
            x = layer(x)
            if index in _NORMED_SOURCES:
                sources.append(getattr(self, _NORMED_SOURCES[index])(x))
        sources.append(x)
        for k, conv in enumerate(self.extras):
            x = F.relu(conv(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        locs, confs = [], []
        for k, source in enumerate(sources):
            conf = self.conf[k](source)
            if k == 0:
                background, _ = torch.max(conf[:, 0:3], dim=1, keepdim=True)
                conf = torch.cat((background, conf[:, 3:]), dim=1)
            locs.append(_flatten(self.loc[k](source)))
            confs.append(_flatten(conf))
        sizes = tuple((int(s.shape[2]), int(s.shape[3])) for s in sources)
        return S3FDHeads(torch.cat(locs, dim=1), torch.cat(confs, dim=1), sizes)


def _vgg_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG_PLAN:
        if isinstance(item, str):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=item == "C"))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    layers += [
        nn.Conv2d(512, 1024, 3, padding=6, dilation=6),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 1),
        nn.ReLU(inplace=True),
    ]
    return layers


def _flatten(head: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C): priors row-major within a map, as the reference concatenates them."""
    return head.permute(0, 2, 3, 1).reshape(head.shape[0], -1, head.shape[1])


def load_s3fd(weights: ResolvedWeights | Path | str, device: torch.device | str) -> S3FDNet:
    """The weights (resolved as the scorer finds them, or a file) in an :class:`S3FDNet` in eval mode on ``device``."""
    net = S3FDNet()
    if isinstance(weights, ResolvedWeights):
        load_resolved(net, weights, model="S3FD")
    else:
        load_into(net, Path(weights), model="S3FD")
    return net.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # torch's Module.to overloads omit its memory_format keyword


def prior_boxes(height: int, width: int, feature_sizes: FeatureSizes) -> torch.Tensor:
    """(P, 4) float32 priors (cx, cy, w, h), normalised, computed in float64 as the reference does."""
    parts = []
    for (rows, cols), step, min_size in zip(feature_sizes, STEPS, MIN_SIZES, strict=True):
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cx = (j.ravel() + 0.5) / (width / step)
        cy = (i.ravel() + 0.5) / (height / step)
        sizes = np.broadcast_to([min_size / width, min_size / height], (cx.size, 2))
        parts.append(np.column_stack([cx, cy, sizes]))
    return torch.from_numpy(np.concatenate(parts).astype(np.float32))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD decode to normalised corners, in the reference's order of float32 operations."""
    centres = priors[..., :2] + loc[..., :2] * VARIANCES[0] * priors[..., 2:]
    sizes = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    mins = centres - sizes / 2
    return torch.cat((mins, sizes + mins), dim=-1)


def greedy_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    *,
    union: Literal["ssd", "numpy"],
    max_candidates: int | None = None,
    max_keep: int | None = None,
) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best first; a box goes when its IoU exceeds the threshold.

    Ranking is a stable ascending sort read from the end, so among equal scores the later box ranks
    first; that is what both reference implementations do (scores tie often: softmax saturates at 1.0).
    ``union`` picks the reference's order of float additions for the IoU denominator, which can flip a
    comparison at the threshold: ``"ssd"`` is the first pass's ``(other - inter) + current`` in float32,
    ``"numpy"`` the second pass's ``current + other - inter`` in float64. Each step suppresses against all
    remaining boxes at once; the loop runs once per kept box.
    """
    order = np.argsort(scores, kind="stable")[::-1][:max_candidates]
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    threshold = boxes.dtype.type(iou_threshold)
    ssd = union == "ssd"
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        current, rest = order[0], order[1:]
        keep.append(int(current))
        w = np.maximum(np.minimum(x2[rest], x2[current]) - np.maximum(x1[rest], x1[current]), 0)
        h = np.maximum(np.minimum(y2[rest], y2[current]) - np.maximum(y1[rest], y1[current]), 0)
        inter = w * h
        denominator = (areas[rest] - inter) + areas[current] if ssd else (areas[current] + areas[rest]) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            order = rest[inter / denominator <= threshold]
    return np.asarray(keep, dtype=np.intp)


class S3FDDetector:
    """The built-in detector, speaking the plug-in protocol: RGB uint8 frames in, pixel boxes out.

    Frames are resized one by one (OpenCV, as the reference), then the whole batch goes through the
    network in one forward pass; priors are cached per network input size. The batch stays channels-last
    (NHWC, as decoded) all the way through: no layout copy of the input, and oneDNN's faster NHWC
    convolutions on the CPU. With ``precision`` bf16/fp16 only the forward pass runs in that dtype; its
    heads come back as float32 before decoding.
    """

    def __init__(
        self,
        net: S3FDNet,
        device: torch.device | str,
        *,
        facedet_scale: float = 0.25,
        conf_th: float = 0.9,
        precision: Precision = "fp32",
    ) -> None:
        from pytest_lipsync.models.runtime import check_precision

        self.net = net
        self.device = torch.device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.facedet_scale = facedet_scale
        self.conf_th = conf_th
        self._priors: dict[tuple[int, int, FeatureSizes], torch.Tensor] = {}
        self._mean = torch.tensor(RGB_MEAN, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def detect(self, frames: np.ndarray, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """(K, 5) float64 arrays of x1, y1, x2, y2, score per frame; ``indices`` is unused by S3FD."""
        if len(frames) == 0:
            return []
        from pytest_lipsync.models.runtime import autocast

        height, width = frames.shape[1:3]
        with torch.inference_mode():
            x = self.network_input(frames)
            with autocast(self.precision, self.device):
                heads = self.net(x)
            priors = self._priors_for(x.shape[2], x.shape[3], heads.feature_sizes)
            boxes = decode_boxes(heads.loc.float(), priors)
            scores = torch.softmax(heads.conf.float(), dim=-1)[..., 1]
            candidates = (scores > CANDIDATE_THRESHOLD) & (scores > self.conf_th)
            counts = candidates.sum(dim=1).tolist()
            kept_boxes = boxes[candidates].cpu().numpy()
            kept_scores = scores[candidates].cpu().numpy()
        splits = np.cumsum(counts)[:-1]
        return [
            _frame_detections(b, s, width, height)
            for b, s in zip(np.split(kept_boxes, splits), np.split(kept_scores, splits), strict=True)
        ]

    def network_input(self, frames: np.ndarray) -> torch.Tensor:
        """(B, 3, H, W) float32 minus the mean, with channels-last strides (a view of the NHWC frames).

        Public for ``lipsync bench``, whose bare forward pass must read exactly what the network reads here."""
        import cv2

        from pytest_lipsync.models.runtime import to_device

        scale = self.facedet_scale
        resized = np.stack(
            [
                cv2.resize(np.ascontiguousarray(f), dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
                for f in frames
            ]
        )
        return to_device(resized, self.device).permute(0, 3, 1, 2).float() - self._mean

    def _priors_for(self, height: int, width: int, feature_sizes: FeatureSizes) -> torch.Tensor:
        key = (height, width, feature_sizes)
        if key not in self._priors:
            self._priors[key] = prior_boxes(height, width, feature_sizes).to(self.device)
        return self._priors[key]


def _frame_detections(boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> np.ndarray:
    """Both NMS passes on one frame's candidates, scaled to pixels of the original frame."""
    first = greedy_nms(
        boxes,
        scores,
        FIRST_NMS_IOU,
        union="ssd",
        max_candidates=FIRST_NMS_CANDIDATES,
        max_keep=FIRST_NMS_KEEP,
    )
    pixels = boxes[first] * np.array([width, height, width, height], dtype=np.float32)
    detections = np.column_stack([pixels, scores[first]]).astype(np.float64)
    second = greedy_nms(detections[:, :4], detections[:, 4], SECOND_NMS_IOU, union="numpy")
    return detections[second].reshape(-1, 5)
