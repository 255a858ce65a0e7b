"""LPIPS, FID and CPBD timed as the scoring core computes them, against their bare computation and the peers.

On the first ``metric_frames`` frames of a clip (decoded beforehand, RGB, so decoding is not timed; the
generated frames are frames 0 ... N - 1 and their "ground truth" frames 1 ... N, a real small difference),
in the scoring core's batches (``quality.video.BATCH_SIZE``) on the run's device, per metric:

- ``seconds``: the package's function, batch by batch: :func:`~pytest_lipsync.quality.lpips.lpips`, FID's
  :class:`~pytest_lipsync.quality.fid.SampledStatistics` (preparing, the forward pass, folding into the running
  float64 sums, then the statistics), :func:`~pytest_lipsync.quality.cpbd.cpbd`;
- ``bare``: what the metric cannot avoid, on the same input right after each call (:class:`.bare.PairedCalls`,
  so that both see the same load): LPIPS's trunk on the 2B scaled frames, FID's Inception on the 299x299
  prepared frames; CPBD has no network, so its bare cost is the two library calls its definition is built on,
  scikit-image's Canny and SciPy's Sobel convolution, on the same grayscale frames. ``ratio = seconds / bare``;
- ``peer``: the peer script's loop on the same frames (:mod:`.peers`), LPIPS as the ``lpips`` package runs one
  frame pair per call, FID as pytorch-fid's ``get_activations`` (with ``--batch-size`` the scoring core's
  batch) and ``np.cov``; each batch right after the package's, so that both see the same load (timed over
  the whole set, pytorch-fid's loop drifted by 3x from the package's on the shared 2-core machine as other
  jobs came and went). ``agreement``: the largest difference of
  the two results, relative to the largest value. CPBD's peer (``cpbd.compute``) loops over every pixel in
  Python; it is timed by ``benchmarks/bench_metrics.py`` against the tests' literal rendering of it;
- FID's ``frechet_seconds``: one Fréchet distance of the two 2048-dimensional statistics (a matrix square
  root, once per comparison whatever the number of frames).

The networks carry stand-in weights (:func:`.models.standin_metric_weights`): every figure is a timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_lipsync.bench.models import LPIPS_NETS

if TYPE_CHECKING:
    import torch

    from pytest_lipsync.bench.bare import PairedCalls


def measure_metrics(
    clip: str, metrics: tuple[str, ...], frames: int, weights: dict[str, str], device: str
) -> list[dict[str, Any]]:
    """One row per metric (module docstring); the frames are read once."""
    from pytest_lipsync.scoring.scorer import resolve_device

    torch_device = resolve_device(device)
    decoded = first_frames(Path(clip), frames + 1)
    generated, reference = decoded[:-1], decoded[1:]
    rows = []
    for metric in metrics:
        if metric in LPIPS_NETS:
            row = time_lpips(metric, generated, reference, weights, torch_device)
        elif metric == "fid":
            row = time_fid(generated, reference, weights, torch_device)
        else:
            row = time_cpbd(generated)
        rows.append({"metric": metric, "frames": len(generated), "width": generated.shape[2],
                     "height": generated.shape[1], **row})  # fmt: skip
    return rows


def first_frames(path: Path, count: int) -> np.ndarray:
    """The first ``count`` 25 fps RGB frames (fewer if the clip is shorter), as the quality metrics decode them."""
    from pytest_lipsync.media.decode import open_video

    batches, total = [], 0
    for batch in open_video(path).frames(8, pix_fmt="rgb24"):
        batches.append(batch)
        total += len(batch)
        if total >= count:
            break
    frames = np.ascontiguousarray(np.concatenate(batches)[:count])
    if len(frames) < 3:
        raise ValueError(f"{path.name}: {len(frames)} frames, too few to time the frame metrics (3 or more)")
    return frames


def batches(count: int) -> list[slice]:
    """The scoring core's batches over ``count`` frames."""
    from pytest_lipsync.quality.video import BATCH_SIZE

    return [slice(start, start + BATCH_SIZE) for start in range(0, count, BATCH_SIZE)]


@contextmanager
def pairing(module: torch.nn.Module, paired: PairedCalls) -> Iterator[PairedCalls]:
    """``module``'s forward replaced by ``paired`` (which wraps the original) while the package's code runs."""
    module.forward = paired  # a timing wrapper of the same call, an instance attribute until the end
    try:
        yield paired
    finally:
        del module.forward


def call_timed(device: torch.device, function: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Seconds of ``function(*args)`` (see :func:`.bare.timed`) and its result."""
    from pytest_lipsync.bench.bare import timed

    results = []
    seconds = timed(lambda: results.append(function(*args)), device)
    return seconds, results[0]


def call_paired(paired: PairedCalls, function: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """:func:`call_timed` less the bare passes ``paired`` timed inside the call."""
    spent = paired.spent
    seconds, result = call_timed(paired.device, function, *args)
    return seconds - (paired.spent - spent), result


def time_lpips(
    metric: str, generated: np.ndarray, reference: np.ndarray, weights: dict[str, str], device: torch.device
) -> dict[str, Any]:
    from pytest_lipsync.bench.bare import PairedCalls
    from pytest_lipsync.bench.peers import lpips_per_frame
    from pytest_lipsync.models.resolve import resolve_weights
    from pytest_lipsync.quality.lpips import WEIGHTS, load_lpips, lpips

    net = LPIPS_NETS[metric]
    trunk_spec, heads_spec = WEIGHTS[net]
    model = load_lpips(
        net,  # type: ignore[arg-type]  # one of LPIPS_NETS' values
        resolve_weights(trunk_spec, weights[f"{metric}-trunk"]),
        resolve_weights(heads_spec, weights[f"{metric}-heads"]),
        str(device),
    )
    trunk = model.trunk.forward
    first = batches(len(generated))[0]
    lpips(reference[first], generated[first], model)  # warm-up: kernels are chosen on the first call per shape
    lpips_per_frame(trunk, model.heads, reference[:1], generated[:1])
    paired = PairedCalls(trunk, device)
    seconds = peer = 0.0
    ours: list[np.ndarray] = []
    theirs: list[np.ndarray] = []
    for part in batches(len(generated)):
        with pairing(model.trunk, paired):
            spent, values = call_paired(paired, lpips, reference[part], generated[part], model)
        seconds += spent
        ours.append(values)
        spent, values = call_timed(device, lpips_per_frame, trunk, model.heads, reference[part], generated[part])
        peer += spent
        theirs.append(values)
    return _row(seconds, paired.total(), peer, _agreement(np.concatenate(ours), np.concatenate(theirs)))


def time_fid(
    generated: np.ndarray, reference: np.ndarray, weights: dict[str, str], device: torch.device
) -> dict[str, Any]:
    from pytest_lipsync.bench.bare import PairedCalls
    from pytest_lipsync.bench.peers import pytorch_fid_activations, pytorch_fid_statistics
    from pytest_lipsync.models.registry import FID_INCEPTION
    from pytest_lipsync.models.resolve import resolve_weights
    from pytest_lipsync.quality.fid import SampledStatistics, frechet_distance, load_inception_features

    features = load_inception_features(resolve_weights(FID_INCEPTION, weights["fid"]), str(device))
    network = features.net.forward
    first = batches(len(generated))[0]
    features(generated[first])  # warm-up, as for LPIPS
    pytorch_fid_activations(network, generated[first], device)
    paired = PairedCalls(network, device)
    sampled = SampledStatistics(features)
    seconds = peer = 0.0
    activations = []
    for part in batches(len(generated)):
        with pairing(features.net, paired):
            seconds += call_paired(paired, sampled.add, generated[part])[0]
        spent, values = call_timed(
            device, pytorch_fid_activations, network, generated[part], device, len(generated[part])
        )
        peer += spent
        activations.append(values)
    started = time.perf_counter()
    statistics = sampled.running.statistics()
    middle = time.perf_counter()
    mean, covariance = pytorch_fid_statistics(np.concatenate(activations))
    seconds += middle - started
    peer += time.perf_counter() - middle
    agreement = max(_agreement(statistics.mean, mean), _agreement(statistics.covariance, covariance))
    for_reference = SampledStatistics(features)
    for part in batches(len(reference)):
        for_reference.add(reference[part])
    reference_statistics = for_reference.running.statistics()
    started = time.perf_counter()
    frechet_distance(statistics, reference_statistics)
    return _row(seconds, paired.total(), peer, agreement) | {"frechet_seconds": time.perf_counter() - started}


def time_cpbd(generated: np.ndarray) -> dict[str, Any]:
    """CPBD and its library calls, batch by batch and one after the other (CPBD runs on the CPU)."""
    from scipy.ndimage import convolve
    from skimage.feature import canny

    from pytest_lipsync.quality.cpbd import SOBEL_KERNEL, cpbd, grayscale

    def library_calls(images: np.ndarray) -> None:
        for image in images:
            canny(image)
            convolve(image, SOBEL_KERNEL)

    first = batches(len(generated))[0]
    cpbd(generated[first])  # warm-up: scikit-image loads its modules on the first call
    seconds = bare = 0.0
    for part in batches(len(generated)):
        images = grayscale(generated[part]).astype(np.float64)
        started = time.perf_counter()
        cpbd(generated[part])
        middle = time.perf_counter()
        library_calls(images)
        seconds += middle - started
        bare += time.perf_counter() - middle
    return _row(seconds, bare, None, None)


def _row(seconds: float, bare: float, peer: float | None, agreement: float | None) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "bare": bare,
        "ratio": seconds / bare if bare > 0 else None,
        "peer": peer,
        "vs_peer": peer / seconds if peer is not None and seconds > 0 else None,
        "agreement": agreement,
    }


def _agreement(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference relative to the largest value (0 for two zero arrays)."""
    scale = float(np.max(np.abs(theirs)))
    difference = float(np.max(np.abs(ours - theirs)))
    return difference / scale if scale > 0 else difference
