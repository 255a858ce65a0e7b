"""PROTOCOL section 4 (S3FD) against a literal re-implementation written as the spec and the reference word it.

The literal detector resizes one frame, does the reference's BGR mean dance, builds priors with nested
loops, keeps every prior above 0.05, runs both NMS passes as Python loops over (float32, then float64)
scalars, and applies ``conf_th`` the way the reference's ``while`` loop does. The production detector
shortcuts the first pass to candidates above ``conf_th`` and vectorises everything; both must agree exactly.
Stand-in weights detect nothing meaningful, but they produce many overlapping candidates and saturated
(tied) scores, which is what the arithmetic needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pytest_lipsync.errors import WeightsError
from pytest_lipsync.faces import s3fd
from pytest_lipsync.faces.s3fd import S3FDDetector, S3FDNet, decode_boxes, greedy_nms, load_s3fd, prior_boxes
from pytest_lipsync.models import runtime
from pytest_lipsync.models.runtime import autocast
from pytest_lipsync.settings import Precision
from pytest_lipsync.synthetic.faces import standin_s3fd_state_dict

KEYS = Path(__file__).parent / "data" / "s3fd.keys.txt"


@pytest.fixture(scope="session")
def net(s3fd_weights: Path) -> S3FDNet:
    return load_s3fd(s3fd_weights, "cpu")


def frames_rgb(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """Noise over gradients: textured enough for the network's scores to vary from frame to frame."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 55, height)[:, None, None]
    noise = rng.integers(0, 60, (count, height, width, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the literal protocol


def literal_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The network as PROTOCOL 4 describes it, layer by layer from the state dict."""

    def conv(name: str, t: torch.Tensor, padding: int = 1, dilation: int = 1, stride: int = 1) -> torch.Tensor:
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], stride, padding, dilation)

    def l2norm(name: str, t: torch.Tensor) -> torch.Tensor:
        norm = t.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return state[f"{name}.weight"].view(1, -1, 1, 1) * (t / norm)

    sources = []
    t = x
    t = F.relu(conv("vgg.0", t))
    t = F.relu(conv("vgg.2", t))
    t = F.max_pool2d(t, 2, 2)
    t = F.relu(conv("vgg.5", t))
    t = F.relu(conv("vgg.7", t))
    t = F.max_pool2d(t, 2, 2)
    t = F.relu(conv("vgg.10", t))
    t = F.relu(conv("vgg.12", t))
    t = F.relu(conv("vgg.14", t))
    sources.append(l2norm("L2Norm3_3", t))
    t = F.max_pool2d(t, 2, 2, ceil_mode=True)
    t = F.relu(conv("vgg.17", t))
    t = F.relu(conv("vgg.19", t))
    t = F.relu(conv("vgg.21", t))
    sources.append(l2norm("L2Norm4_3", t))
    t = F.max_pool2d(t, 2, 2)
    t = F.relu(conv("vgg.24", t))
    t = F.relu(conv("vgg.26", t))
    t = F.relu(conv("vgg.28", t))
    sources.append(l2norm("L2Norm5_3", t))
    t = F.max_pool2d(t, 2, 2)
    t = F.relu(conv("vgg.31", t, padding=6, dilation=6))
    t = F.relu(conv("vgg.33", t, padding=0))
    sources.append(t)
    t = F.relu(conv("extras.0", t, padding=0))
    t = F.relu(conv("extras.1", t, stride=2))
    sources.append(t)
    t = F.relu(conv("extras.2", t, padding=0))
    t = F.relu(conv("extras.3", t, stride=2))
    sources.append(t)
    locs, confs = [], []
    for k, source in enumerate(sources):
        c = conv(f"conf.{k}", source)
        if k == 0:
            c = torch.cat([c[:, 0:3].max(dim=1, keepdim=True).values, c[:, 3:4]], dim=1)
        locs.append(conv(f"loc.{k}", source).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
        confs.append(c.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2))
    sizes = [(s.shape[2], s.shape[3]) for s in sources]
    return torch.cat(locs, 1), torch.cat(confs, 1), sizes


def literal_priors(height: int, width: int, sizes: list) -> torch.Tensor:
    mean = []
    for k, (rows, cols) in enumerate(sizes):
        step, min_size = [4, 8, 16, 32, 64, 128][k], [16, 32, 64, 128, 256, 512][k]
        for i in range(rows):
            for j in range(cols):
                mean += [(j + 0.5) / (width / step), (i + 0.5) / (height / step), min_size / width, min_size / height]
    return torch.tensor(mean, dtype=torch.float32).view(-1, 4)


def literal_decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Centre + loc * 0.1 * size, size * exp(loc * 0.2), then corners."""
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)
    x1y1 = centre - size / 2
    return torch.cat([x1y1, size + x1y1], dim=1)


def literal_nms_first(boxes: Sequence[np.ndarray], scores: Sequence[float], overlap: float, top_k: int) -> list[int]:
    """The reference's torch NMS: ascending sort, take the last, keep the rest with IoU <= overlap (float32)."""
    idx = sorted(range(len(scores)), key=lambda i: scores[i])[-top_k:]
    keep = []
    while idx:
        i = idx.pop()
        keep.append(i)
        bi, area_i = boxes[i], (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
        survivors = []
        for j in idx:
            bj = boxes[j]
            w = max(min(bj[2], bi[2]) - max(bj[0], bi[0]), np.float32(0))
            h = max(min(bj[3], bi[3]) - max(bj[1], bi[1]), np.float32(0))
            inter = w * h
            area_j = (bj[2] - bj[0]) * (bj[3] - bj[1])
            if inter / ((area_j - inter) + area_i) <= np.float32(overlap):
                survivors.append(j)
        idx = survivors
    return keep


def literal_nms_second(dets: np.ndarray, thresh: float) -> list[int]:
    """The reference's numpy NMS (py-faster-rcnn): descending order, areas without +1, float64."""
    order = sorted(range(len(dets)), key=lambda i: dets[i][4])[::-1]
    keep = []
    while order:
        i, rest = order[0], order[1:]
        keep.append(i)
        survivors = []
        for j in rest:
            a, b = [float(v) for v in dets[i][:4]], [float(v) for v in dets[j][:4]]
            inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
            if inter / (area_a + area_b - inter) <= thresh:
                survivors.append(j)
        order = survivors
    return keep


def literal_detect(net: S3FDNet, image_rgb: np.ndarray, scale: float, conf_th: float) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    scaled = cv2.resize(image_rgb, dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    chw = np.swapaxes(np.swapaxes(scaled, 1, 2), 1, 0)[[2, 1, 0]].astype("float32")
    chw -= np.array([104.0, 117.0, 123.0], dtype="float32")[:, None, None]
    x = torch.from_numpy(chw[[2, 1, 0]].copy()).unsqueeze(0)
    with torch.no_grad():
        heads = net(x)
    priors = literal_priors(x.shape[2], x.shape[3], list(heads.feature_sizes))
    boxes = literal_decode(heads.loc[0], priors)
    scores = torch.softmax(heads.conf[0], dim=-1)[:, 1]
    mask = scores.gt(0.05)
    cand_boxes, cand_scores = boxes[mask].numpy(), scores[mask].numpy()
    keep = literal_nms_first(list(cand_boxes), list(cand_scores), 0.3, 5000)[:750]
    rows = []
    j = 0
    while j < len(keep) and cand_scores[keep[j]] > conf_th:
        pt = cand_boxes[keep[j]] * np.array([w, h, w, h], dtype=np.float32)
        rows.append((pt[0], pt[1], pt[2], pt[3], cand_scores[keep[j]]))
        j += 1
    dets = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return dets[literal_nms_second(dets, 0.1)].reshape(-1, 5)


# ---------------------------------------------------------------- weights and network


def test_state_dict_has_the_released_keys_shapes_and_dtypes() -> None:
    expected = [line.split("\t") for line in KEYS.read_text().splitlines() if line and not line.startswith("#")]
    actual = [[key, str(tuple(value.shape)), str(value.dtype)] for key, value in S3FDNet().state_dict().items()]
    assert actual == expected


def test_standin_weights_load_exactly_and_depend_only_on_the_seed(net: S3FDNet) -> None:
    again, other = standin_s3fd_state_dict(0), standin_s3fd_state_dict(1)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[key], again[key]) for key in again)
    assert not torch.equal(again["conf.3.weight"], other["conf.3.weight"])
    assert not net.training


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda state: state.pop("conf.0.weight"), "'conf.0.weight' (4, 256, 3, 3) is missing"),
        (lambda state: state.update({"loc.5.bias": torch.zeros(2)}), "'loc.5.bias' has shape (2,), expected (4,)"),
        (lambda state: state.update({"netcnnaud.0.weight": torch.zeros(1)}), "unexpected key 'netcnnaud.0.weight'"),
        (
            lambda state: state["extras.2.bias"].index_fill_(0, torch.tensor([3, 7]), math.inf),
            "'extras.2.bias' holds 2 non-finite values",
        ),
        (
            lambda state: [value.fill_(math.nan) for value in state.values()],
            "'vgg.0.weight' holds 1728 non-finite values",
        ),
    ],
)
def test_a_wrong_weights_file_fails_naming_the_key(
    tmp_path: Path, edit: Callable[[dict[str, torch.Tensor]], object], named: str
) -> None:
    state = standin_s3fd_state_dict()
    edit(state)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as caught:
        load_s3fd(path, "cpu")
    assert named in caught.value.message
    assert str(path) in caught.value.message
    assert "S3FD" in caught.value.message


@pytest.mark.parametrize(("height", "width"), [(64, 96), (70, 90)])  # 70: the ceil_mode pool rounds up
def test_network_equals_the_literal_forward_pass(net: S3FDNet, height: int, width: int) -> None:
    x = torch.from_numpy(frames_rgb(1, height, width, seed=height).transpose(0, 3, 1, 2).astype(np.float32)) - 110
    with torch.inference_mode():
        heads = net(x)
        loc, conf, sizes = literal_forward(net.state_dict(), x)
    assert list(heads.feature_sizes) == sizes
    torch.testing.assert_close(heads.loc, loc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(heads.conf, conf, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- priors, decode, NMS


@pytest.mark.parametrize(("height", "width"), [(64, 96), (70, 90)])
def test_priors_equal_the_literal_loops_on_the_actual_feature_maps(net: S3FDNet, height: int, width: int) -> None:
    with torch.inference_mode():
        sizes = net(torch.zeros(1, 3, height, width)).feature_sizes
    assert torch.equal(prior_boxes(height, width, sizes), literal_priors(height, width, list(sizes)))


def test_decode_equals_the_literal_formula() -> None:
    generator = torch.Generator().manual_seed(3)
    loc = torch.randn(500, 4, generator=generator) * 2
    priors = torch.rand(500, 4, generator=generator)
    assert torch.equal(decode_boxes(loc, priors), literal_decode(loc, priors))
    batched = decode_boxes(loc.view(5, 100, 4), priors[:100])
    assert torch.equal(batched[2], literal_decode(loc[200:300], priors[:100]))


def random_boxes(count: int, seed: int, dtype: type[np.floating[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Clustered boxes (heavy overlap) with scores on a coarse grid (many ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (6, 2))[rng.integers(0, 6, count)] + rng.normal(0, 0.03, (count, 2))
    sizes = rng.uniform(0.05, 0.3, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(dtype)
    return boxes, np.round(rng.uniform(0, 1, count), 1).astype(dtype)


@pytest.mark.parametrize(("max_candidates", "max_keep"), [(5000, 750), (40, 750), (5000, 7), (25, 5)])
def test_first_nms_pass_equals_the_literal_loop(max_candidates: int, max_keep: int) -> None:
    boxes, scores = random_boxes(300, seed=max_candidates + max_keep, dtype=np.float32)
    kept = greedy_nms(boxes, scores, 0.3, union="ssd", max_candidates=max_candidates, max_keep=max_keep)
    assert kept.tolist() == literal_nms_first(list(boxes), list(scores), 0.3, max_candidates)[:max_keep]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_second_nms_pass_equals_the_literal_loop(seed: int) -> None:
    boxes, scores = random_boxes(120, seed=seed, dtype=np.float64)
    dets = np.column_stack([boxes * 640, scores])
    kept = greedy_nms(dets[:, :4], dets[:, 4], 0.1, union="numpy")
    assert kept.tolist() == literal_nms_second(dets, 0.1)


def test_among_equal_scores_the_later_box_ranks_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    assert greedy_nms(boxes, scores, 0.3, union="ssd").tolist() == [2, 1]


@pytest.mark.parametrize(("union", "dtype", "threshold"), [("ssd", np.float32, 0.3), ("numpy", np.float64, 0.1)])
def test_a_box_overlapping_exactly_at_the_threshold_is_kept(
    union: Literal["ssd", "numpy"], dtype: type[np.floating[Any]], threshold: float
) -> None:
    """IoU = 10 * h / 100 equals the threshold exactly: kept (IoU <= threshold); a hair more overlap and it goes."""
    height = threshold * 10
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, height], [0, 0, 10, height + 0.01]], dtype=dtype)
    scores = np.array([0.9, 0.8, 0.7], dtype=dtype)
    assert greedy_nms(boxes, scores, threshold, union=union).tolist() == [0, 1]


# ---------------------------------------------------------------- the detector end to end


@pytest.mark.parametrize(
    ("height", "width", "scale", "conf_th"),
    [(64, 96, 1.0, 0.5), (64, 96, 1.0, 0.05), (70, 90, 1.0, 0.9), (280, 360, 0.25, 0.3)],
)
def test_detector_equals_the_literal_protocol(
    net: S3FDNet, height: int, width: int, scale: float, conf_th: float
) -> None:
    """One frame per call: the literal runs the network on one frame, and batches round differently (below)."""
    frame = frames_rgb(1, height, width, seed=width)
    detector = S3FDDetector(net, "cpu", facedet_scale=scale, conf_th=conf_th)
    boxes = detector.detect(frame, [0])[0]
    assert boxes.dtype == np.float64
    assert len(boxes) > 0
    np.testing.assert_array_equal(boxes, literal_detect(net, frame[0], scale, conf_th))


def test_priors_are_cached_per_input_size(net: S3FDNet) -> None:
    detector = S3FDDetector(net, "cpu", facedet_scale=1.0, conf_th=0.5)
    small, large = frames_rgb(1, 64, 96, seed=5), frames_rgb(1, 70, 90, seed=6)
    first = detector.detect(small, [0])[0]
    detector.detect(large, [1])
    again = detector.detect(small, [2])[0]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(detector.detect(large, [3])[0], literal_detect(net, large[0], 1.0, 0.5))


def test_frames_may_be_a_channel_reversed_view(net: S3FDNet) -> None:
    """The pipeline decodes BGR and may hand over ``bgr[..., ::-1]``: a view with a negative stride."""
    bgr = frames_rgb(1, 64, 96, seed=12)
    detector = S3FDDetector(net, "cpu", facedet_scale=0.5, conf_th=0.3)
    view = detector.detect(bgr[..., ::-1], [0])[0]
    np.testing.assert_array_equal(view, detector.detect(np.ascontiguousarray(bgr[..., ::-1]), [0])[0])
    assert len(view) > 0


def test_batched_detection_gives_the_boxes_of_one_frame_at_a_time(net: S3FDNet) -> None:
    """Convolution kernels chosen per batch size round differently (about 1e-7 relative), so boxes agree to
    float precision: same boxes, same order, coordinates within a thousandth of a pixel."""
    frames = frames_rgb(3, 64, 96, seed=11)
    detector = S3FDDetector(net, "cpu", facedet_scale=1.0, conf_th=0.5)
    batched = detector.detect(frames, np.arange(3))
    for k, boxes in enumerate(batched):
        single = detector.detect(frames[k : k + 1], [k])[0]
        assert boxes.shape == single.shape
        np.testing.assert_allclose(boxes, single, rtol=0, atol=1e-3)
    assert detector.detect(frames[:0], []) == []


# ---------------------------------------------------------------- layout and precision


def test_channels_last_gives_the_boxes_of_the_nchw_network(net: S3FDNet) -> None:
    """The detector runs channels-last (faster on the CPU); its convolutions round differently from NCHW ones
    (about 1e-7 relative, as batching does), so boxes agree to float precision, one frame at a time."""
    assert net.vgg[0].weight.is_contiguous(memory_format=torch.channels_last)  # type: ignore[operator]  # nn.Module.__getattr__ is typed Tensor | Module; this is a conv's weight
    nchw = S3FDNet().eval()
    nchw.load_state_dict(net.state_dict())
    assert nchw.vgg[0].weight.is_contiguous()  # type: ignore[operator]  # nn.Module.__getattr__ is typed Tensor | Module; this is a conv's weight
    for seed, (height, width, scale) in enumerate([(64, 96, 1.0), (280, 360, 0.25)]):
        frame = frames_rgb(1, height, width, seed=seed)
        fast = S3FDDetector(net, "cpu", facedet_scale=scale, conf_th=0.3).detect(frame, [0])[0]
        plain = S3FDDetector(nchw, "cpu", facedet_scale=scale, conf_th=0.3).detect(frame, [0])[0]
        assert len(fast) > 0 and fast.shape == plain.shape
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-3)


def _heads(net: S3FDNet, frame: np.ndarray, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw heads (loc, class logits) of the detector's own network input, under the precision's autocast."""
    detector = S3FDDetector(net, "cpu", facedet_scale=1.0, conf_th=0.9, precision=precision)
    with torch.inference_mode():
        x = detector.network_input(frame)
        with autocast(precision, detector.device):
            heads = net(x)
    return heads.loc, heads.conf


def test_bf16_heads_and_boxes_are_close_to_fp32(net: S3FDNet, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 keeps 8 significant bits (2**-9 relative rounding); over S3FD's ~20 layers the heads drift by
    about 1% of their range (measured: loc 0.04 of 3.1, logits 0.3 of 50). A loc error of 0.1 moves a
    box centre by 1% of its prior's size, so a detection well above ``conf_th`` stays the same box (IoU 0.99
    measured). Boxes near the threshold, or decided by an NMS overlap near 0.3, may differ: that is why
    bf16 is an option and not the protocol. (On a CPU without bfloat16 instructions, where scoring refuses bf16,
    torch emulates it here: slower, same numbers to the tolerances.)"""
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    frame = frames_rgb(1, 70, 90, seed=90)
    loc32, conf32 = _heads(net, frame, "fp32")
    loc16, conf16 = _heads(net, frame, "bf16")
    assert loc16.dtype == torch.bfloat16
    torch.testing.assert_close(loc16.float(), loc32, rtol=0, atol=0.1)
    torch.testing.assert_close(torch.softmax(conf16.float(), -1), torch.softmax(conf32, -1), rtol=0, atol=0.02)

    decoded: list[torch.dtype] = []
    real_decode = s3fd.decode_boxes
    monkeypatch.setattr(s3fd, "decode_boxes", lambda loc, priors: decoded.append(loc.dtype) or real_decode(loc, priors))  # type: ignore[func-returns-value]  # records the call: append's None falls through to the real one
    fp32 = S3FDDetector(net, "cpu", facedet_scale=1.0, conf_th=0.9).detect(frame, [0])[0]
    bf16 = S3FDDetector(net, "cpu", facedet_scale=1.0, conf_th=0.9, precision="bf16").detect(frame, [0])[0]
    assert decoded == [torch.float32, torch.float32]  # post-processing in the reference's dtypes
    assert bf16.dtype == np.float64 and fp32.shape == bf16.shape == (1, 5)
    assert _iou(fp32[0], bf16[0]) > 0.98 and abs(fp32[0, 4] - bf16[0, 4]) < 0.02


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_fp16_on_the_cpu_is_refused_when_the_detector_is_made(net: S3FDNet) -> None:
    from pytest_lipsync.errors import ConfigError

    with pytest.raises(ConfigError, match="'precision' is 'fp16', but on the CPU"):
        S3FDDetector(net, "cpu", precision="fp16")
