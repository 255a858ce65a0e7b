"""The SyncNet architecture and its loader: released keys, strict checks, no code execution."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_lipsync.errors import WeightsError
from pytest_lipsync.models.registry import SYNCNET
from pytest_lipsync.models.resolve import locate_weights
from pytest_lipsync.sync.model import SyncNet
from pytest_lipsync.sync.model import load_syncnet as _load
from tests.conftest import DATA, MakeClip


def load_syncnet(path: Path, device: torch.device) -> SyncNet:
    return _load(locate_weights(SYNCNET, path), device)  # type: ignore[arg-type]  # the stand-in file exists: it resolves


def released_keys() -> dict[str, tuple[int, ...]]:
    rows = [
        line.split("\t") for line in (DATA / "syncnet.keys.txt").read_text().splitlines() if not line.startswith("#")
    ]
    return {key: tuple(int(n) for n in shape.strip("()").split(",") if n.strip()) for key, shape, _ in rows}


def test_state_dict_has_exactly_the_released_keys_and_shapes() -> None:
    state = SyncNet().state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == released_keys()


def test_release_format_without_num_batches_tracked_loads(syncnet_weights: Path) -> None:
    saved = torch.load(syncnet_weights, weights_only=True)
    assert not any(key.endswith("num_batches_tracked") for key in saved)
    net = load_syncnet(syncnet_weights, torch.device("cpu"))
    assert not net.training
    assert torch.equal(net.state_dict()["netfcaud.3.bias"], saved["netfcaud.3.bias"])


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return SyncNet().state_dict()


def test_missing_key_is_named(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    broken = {k: v for k, v in state.items() if k != "netcnnlip.18.weight"}
    with pytest.raises(WeightsError, match=r"key 'netcnnlip.18.weight' \(512, 256, 1, 6, 6\) is missing"):
        load_syncnet(_save(broken, tmp_path / "w.model"), torch.device("cpu"))


def test_wrong_shape_is_named(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    broken = dict(state, **{"netfcaud.3.weight": torch.zeros(512, 512)})
    with pytest.raises(WeightsError, match=r"'netfcaud.3.weight' has shape \(512, 512\), expected \(1024, 512\)"):
        load_syncnet(_save(broken, tmp_path / "w.model"), torch.device("cpu"))


def test_unexpected_key_is_named(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    broken = dict(state, extra=torch.zeros(1))
    with pytest.raises(WeightsError, match="unexpected key 'extra'"):
        load_syncnet(_save(broken, tmp_path / "w.model"), torch.device("cpu"))


def _all_nan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.clone().fill_(math.nan) if value.is_floating_point() else value for key, value in state.items()}


def test_non_finite_weights_are_refused_naming_the_file_and_the_first_key(
    state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """Weights of the right shapes but NaN or infinite (a diverged training run, a damaged export) load into a
    network that scores NaN: refused at load, before any video is touched."""
    path = _save(_all_nan(state), tmp_path / "nan.model")
    with pytest.raises(
        WeightsError,
        match=rf"{path}: is not usable SyncNet weights: 'netcnnaud.0.weight' holds 576 "
        r"non-finite values \(NaN or infinity\) of 576.*lipsync fetch-models",
    ):
        load_syncnet(path, torch.device("cpu"))
    one_inf = dict(
        state, **{"netfclip.3.bias": state["netfclip.3.bias"].clone().index_fill_(0, torch.tensor([9]), -math.inf)}
    )
    with pytest.raises(
        WeightsError, match=r"'netfclip.3.bias' holds 1 non-finite values \(NaN or infinity\) of 1024"
    ) as caught:
        load_syncnet(_save(one_inf, tmp_path / "inf.model"), torch.device("cpu"))
    assert caught.value.facts == {"key": "netfclip.3.bias", "non_finite": 1}


def test_lipsync_score_with_nan_weights_is_a_usage_error(
    state: dict[str, torch.Tensor], make_clip: MakeClip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_lipsync.cli.app import main
    from pytest_lipsync.synthetic.clips import ClipSpec

    path = _save(_all_nan(state), tmp_path / "nan.model")
    clip = make_clip("nan_weights.mkv", ClipSpec(seconds=0.5, width=64, height=64))
    args = ["score", str(clip), "--protocol", "cropped", "--fidelity", "clean", "--device", "cpu", "--offline", "-q"]
    assert main([*args, "--syncnet-weights", str(path), "--json", str(tmp_path / "scores.json")]) == 2
    assert (
        f"{path}: is not usable SyncNet weights: 'netcnnaud.0.weight' holds 576 non-finite values"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "scores.json").exists()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.model"
    torch.save({"netcnnaud.0.weight": _Exploit(marker)}, path)
    with pytest.raises(WeightsError, match="evil.model: refused to load: .* would run code"):
        load_syncnet(path, torch.device("cpu"))
    assert not marker.exists()


def test_sequence_mode_equals_per_window_forward(syncnet_weights: Path) -> None:
    net = load_syncnet(syncnet_weights, torch.device("cpu"))
    frames = torch.rand(3, 9, 224, 224, generator=torch.Generator().manual_seed(0)) * 255
    with torch.inference_mode():
        sequence = net.forward_lip_sequence(frames)
        windows = net.forward_lip(torch.stack([frames[:, i : i + 5] for i in range(5)]))
    torch.testing.assert_close(sequence, windows, rtol=1e-5, atol=1e-5)


def test_bf16_embeddings_and_scores_are_close_to_fp32(syncnet_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 keeps 8 significant bits; through the lip tower's 6 convolutions and the heads the embeddings move
    by under 2% (relative L2, measured 1.7%), which moves the distances by about 1%. They come back as
    float32, so the distances are computed in the reference's dtype. (On a CPU without bfloat16 instructions,
    where scoring refuses bf16, torch emulates it here: slower, same numbers to the tolerances.)"""
    from pytest_lipsync.models import runtime
    from pytest_lipsync.sync.lse import SyncScorer, Timings

    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)

    net = load_syncnet(syncnet_weights, torch.device("cpu"))
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    audio = (rng.standard_normal(12 * 640) * 3000).astype(np.int16)
    results = {}
    for precision in ("fp32", "bf16"):
        scorer = SyncScorer(net, torch.device("cpu"), batch_size=4, precision=precision)
        lip, aud = scorer.embed_track([crops[:6], crops[6:]], audio, Timings())
        results[precision] = lip, aud, scorer.curve(lip, aud, Timings())[0]
    for exact, fast in zip(results["fp32"][:2], results["bf16"][:2], strict=True):
        assert fast.dtype == torch.float32 and fast.shape == exact.shape == (7, 1024)
        assert float(((fast - exact).norm(dim=1) / exact.norm(dim=1)).max()) < 0.03
    exact_curve, fast_curve = results["fp32"][2], results["bf16"][2]
    np.testing.assert_allclose(fast_curve.mean_dist, exact_curve.mean_dist, rtol=0.03)


def test_channels_last_lip_tower_gives_the_ncdhw_embeddings(syncnet_weights: Path) -> None:
    """The lip tower runs channels-last (faster on the CPU); its convolutions round differently from NCDHW ones,
    by about 1e-6 relative, far below what moves a distance's third decimal."""
    net = load_syncnet(syncnet_weights, torch.device("cpu"))
    assert net.netcnnlip[0].weight.is_contiguous(memory_format=torch.channels_last_3d)  # type: ignore[operator]  # nn.Module.__getattr__ is typed Tensor | Module; this is a conv's weight
    plain = SyncNet().eval()
    plain.load_state_dict({key: value.contiguous() for key, value in net.state_dict().items()})
    assert plain.netcnnlip[0].weight.is_contiguous()  # type: ignore[operator]  # nn.Module.__getattr__ is typed Tensor | Module; this is a conv's weight
    frames = torch.rand(7, 224, 224, 3, generator=torch.Generator().manual_seed(1)) * 255
    with torch.inference_mode():
        fast = net.forward_lip_sequence(frames.permute(3, 0, 1, 2))  # the scorer's layout: a view of NHWC crops
        exact = plain.forward_lip_sequence(frames.permute(3, 0, 1, 2).contiguous())
    torch.testing.assert_close(fast, exact, rtol=1e-4, atol=1e-5)
