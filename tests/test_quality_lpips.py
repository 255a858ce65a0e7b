"""LPIPS against a slow, literal rendering of its published definition, and loading the released layouts.

The networks carry stand-in weights with every key and shape of the released files (generated here from a
fixed seed; the releases cannot be downloaded): the values test arithmetic and layouts, not perception.
The literal LPIPS runs each frame alone in float64, reading the weights straight from the state dicts, so it
shares no code with the package beyond torch's operators.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pytest_lipsync.errors import ConfigError, WeightsError
from pytest_lipsync.models.registry import ALEXNET, LPIPS_ALEX, LPIPS_VGG, QUALITY, RELEASED, VGG16, WeightsSpec
from pytest_lipsync.models.resolve import resolve_weights
from pytest_lipsync.quality.lpips import LPIPS, load_lpips, lpips
from pytest_lipsync.quality.networks.alexnet import AlexNetFeatures
from pytest_lipsync.quality.networks.base import on_meta
from pytest_lipsync.quality.networks.vgg import VGG16Features
from pytest_lipsync.synthetic.networks import save_state_dict, standin_heads_state_dict, standin_network_state_dict

State = dict[str, torch.Tensor]
Layers = list[tuple[object, ...]]
Files = Callable[[str], tuple[Path, Path]]  # net -> (trunk file, heads file)
Models = Callable[[str], LPIPS]

# The published trunks, layer by layer: ("conv", torchvision index, stride, padding) with its ReLU, ("pool",
# kernel, stride), and "tap" where LPIPS reads an activation.
ALEXNET_LAYERS: Layers = [
    ("conv", 0, 4, 2), ("tap",), ("pool", 3, 2), ("conv", 3, 1, 2), ("tap",), ("pool", 3, 2),
    ("conv", 6, 1, 1), ("tap",), ("conv", 8, 1, 1), ("tap",), ("conv", 10, 1, 1), ("tap",),
]  # fmt: skip
VGG16_LAYERS: Layers = [
    ("conv", 0, 1, 1), ("conv", 2, 1, 1), ("tap",), ("pool", 2, 2),
    ("conv", 5, 1, 1), ("conv", 7, 1, 1), ("tap",), ("pool", 2, 2),
    ("conv", 10, 1, 1), ("conv", 12, 1, 1), ("conv", 14, 1, 1), ("tap",), ("pool", 2, 2),
    ("conv", 17, 1, 1), ("conv", 19, 1, 1), ("conv", 21, 1, 1), ("tap",), ("pool", 2, 2),
    ("conv", 24, 1, 1), ("conv", 26, 1, 1), ("conv", 28, 1, 1), ("tap",),
]  # fmt: skip
LAYERS = {"alex": ALEXNET_LAYERS, "vgg": VGG16_LAYERS}
NETWORKS = {"alex": AlexNetFeatures, "vgg": VGG16Features}
SPECS = {"alex": (ALEXNET, LPIPS_ALEX), "vgg": (VGG16, LPIPS_VGG)}
SIZES = {"alex": 64, "vgg": 32}  # small frames: the trunks are fully convolutional


def literal_lpips(gt: np.ndarray, gen: np.ndarray, trunk: State, heads: State, layers: Layers) -> float:
    """LPIPS v0.1 of one pair of (H, W, 3) uint8 frames, every step written out in float64."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def activations(frame: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(frame).double().permute(2, 0, 1)[None] / (255 / 2) - 1
        x = (x - shift) / scale
        tapped = []
        for layer in layers:
            if layer[0] == "conv":
                _, index, stride, padding = layer
                weight, bias = trunk[f"features.{index}.weight"].double(), trunk[f"features.{index}.bias"].double()
                x = F.relu(F.conv2d(x, weight, bias, stride=stride, padding=padding))  # type: ignore[call-overload]  # a Layers row is typed tuple[object, ...]
            elif layer[0] == "pool":
                x = F.max_pool2d(x, kernel_size=layer[1], stride=layer[2])  # type: ignore[call-overload]  # a Layers row is typed tuple[object, ...]
            else:
                tapped.append(x)
        return tapped

    total = 0.0
    for index, (first, second) in enumerate(zip(activations(gt), activations(gen))):
        first = first / (torch.sqrt((first**2).sum(dim=1, keepdim=True)) + 1e-10)
        second = second / (torch.sqrt((second**2).sum(dim=1, keepdim=True)) + 1e-10)
        weights = heads[f"lin{index}.model.1.weight"].double().view(1, -1, 1, 1)
        total += float(((first - second) ** 2 * weights).sum(dim=1).mean())
    return total


def frames(count: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour fields with noise: unlike pure noise, the trunk's activations vary across the frame."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:size, 0:size] / size
    slopes, phases = 6 * rng.random((count, 3, 2)), 6 * rng.random((count, 3))
    fields = np.sin(slopes[..., 0, None, None] * columns + slopes[..., 1, None, None] * rows + phases[..., None, None])
    noisy = 127 + 100 * fields.transpose(0, 2, 3, 1) + rng.normal(0, 12, (count, size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """(trunk file, heads file) of stand-in weights in the released layouts, written once per module."""
    directory = tmp_path_factory.mktemp("lpips")
    written: dict[str, tuple[Path, Path]] = {}

    def files(net: str) -> tuple[Path, Path]:
        if net not in written:
            layout = on_meta(NETWORKS[net])
            trunk = save_state_dict(standin_network_state_dict(layout, seed=1), directory / f"{net}-trunk.pth")
            heads = save_state_dict(standin_heads_state_dict(layout.CHANNELS, seed=2), directory / f"{net}-heads.pth")
            written[net] = trunk, heads
        return written[net]

    return files


@pytest.fixture(scope="module")
def model(standin: Files) -> Models:
    made: dict[str, LPIPS] = {}

    def get(net: str) -> LPIPS:
        if net not in made:
            trunk_spec, heads_spec = SPECS[net]
            trunk, heads = standin(net)
            trunk_weights, heads_weights = resolve_weights(trunk_spec, trunk), resolve_weights(heads_spec, heads)
            made[net] = load_lpips(net, trunk_weights, heads_weights)  # type: ignore[arg-type]  # net is a SPECS key, so one of the networks
        return made[net]

    return get


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty cache of its own and no LIPSYNC_* variables, so nothing on this machine is found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for variable in ("LIPSYNC_HOME", "LIPSYNC_OFFLINE", "LIPSYNC_MIRRORS", *(spec.env_var for spec in QUALITY)):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_literal_definition(net: str, standin: Files, model: Models) -> None:
    gt, gen = frames(2, SIZES[net], seed=0), frames(2, SIZES[net], seed=1)
    trunk, heads = (torch.load(path, weights_only=True) for path in standin(net))
    expected = [literal_lpips(a, b, trunk, heads, LAYERS[net]) for a, b in zip(gt, gen)]
    got = lpips(gt, gen, model(net))
    assert got.dtype == np.float64 and got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_trunk_sees_the_floats_the_lpips_package_feeds_it(model: Models) -> None:
    """``im2tensor`` (float64, rounded to float32), then the ScalingLayer in float32: bit for bit."""
    gt, gen = frames(2, 64, seed=7), frames(2, 64, seed=8)
    seen: list[torch.Tensor] = []
    hook = model("alex").trunk.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].clone()))
    try:
        lpips(gt, gen, model("alex"))
    finally:
        hook.remove()
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    unit = torch.tensor(np.concatenate([gt, gen]).transpose(0, 3, 1, 2) / (255 / 2) - 1, dtype=torch.float32)
    assert torch.equal(seen[0], (unit - shift) / scale)


def test_identical_frames_score_exactly_zero(model: Models) -> None:
    gt = frames(2, 64, seed=3)
    np.testing.assert_array_equal(lpips(gt, gt.copy(), model("alex")), [0.0, 0.0])


def test_the_released_layouts_load_key_for_key(standin: Files, model: Models) -> None:
    """Every tensor of the files reaches the network under its own name; the classifier is checked, not loaded."""
    trunk_file, heads_file = (torch.load(path, weights_only=True) for path in standin("alex"))
    loaded = model("alex")
    trunk = loaded.trunk.state_dict()
    assert set(trunk) == {key for key in trunk_file if not key.startswith("classifier.")}
    assert {key for key in trunk_file if key.startswith("classifier.")} == {
        f"classifier.{index}.{kind}" for index in (1, 4, 6) for kind in ("weight", "bias")
    }
    for key, value in trunk.items():
        assert torch.equal(value, trunk_file[key]), key
    assert loaded.heads.state_dict().keys() == heads_file.keys()
    for key, value in loaded.heads.state_dict().items():
        assert torch.equal(value, heads_file[key]), key


def changed(state: State, key: str, change: str) -> State:
    edited = dict(state)
    if change == "missing":
        del edited[key]
    elif change == "extra":
        edited[key] = torch.zeros(3)
    else:
        edited[key] = torch.zeros(tuple(edited[key].shape[:-1]) + (edited[key].shape[-1] + 1,))
    return edited


@pytest.mark.parametrize(
    ("part", "key", "change", "says"),
    [
        ("trunk", "features.3.bias", "missing", r"key 'features\.3\.bias' \(192,\) is missing"),
        ("trunk", "classifier.6.weight", "missing", r"key 'classifier\.6\.weight' \(1000, 4096\) is missing"),
        ("trunk", "features.12.weight", "extra", r"unexpected key 'features\.12\.weight'"),
        ("trunk", "features.0.weight", "shape", r"'features\.0\.weight' has shape \(64, 3, 11, 12\)"),
        ("heads", "lin4.model.1.weight", "missing", r"key 'lin4\.model\.1\.weight' \(1, 256, 1, 1\) is missing"),
        ("heads", "lin0.model.0.weight", "extra", r"unexpected key 'lin0\.model\.0\.weight'"),
        ("heads", "lin2.model.1.weight", "shape", r"'lin2\.model\.1\.weight' has shape \(1, 384, 1, 2\)"),
    ],
)
def test_a_file_of_another_layout_is_refused_by_key(
    part: str, key: str, change: str, says: str, standin: Files, tmp_path: Path
) -> None:
    trunk, heads = standin("alex")
    source = trunk if part == "trunk" else heads
    edited = save_state_dict(changed(torch.load(source, weights_only=True), key, change), tmp_path / source.name)
    trunk, heads = (edited, heads) if part == "trunk" else (trunk, edited)
    with pytest.raises(WeightsError, match=says):
        load_lpips("alex", resolve_weights(ALEXNET, trunk), resolve_weights(LPIPS_ALEX, heads))


def test_heads_of_the_other_trunk_are_refused(standin: Files) -> None:
    trunk, _ = standin("alex")
    _, vgg_heads = standin("vgg")
    says = r"'lin1\.model\.1\.weight' has shape \(1, 128, 1, 1\), expected \(1, 192, 1, 1\)"
    with pytest.raises(WeightsError, match=says):
        load_lpips("alex", resolve_weights(ALEXNET, trunk), resolve_weights(LPIPS_ALEX, vgg_heads))


@pytest.mark.parametrize("spec", [ALEXNET, LPIPS_ALEX, VGG16, LPIPS_VGG], ids=lambda spec: spec.name)
def test_missing_weights_name_the_file_its_hash_and_url(spec: WeightsSpec, isolated: None) -> None:
    with pytest.raises(WeightsError) as raised:
        resolve_weights(spec, offline=True)
    message = str(raised.value)
    assert spec.filename in message and spec.sha256 in message and spec.urls[0] in message


def test_fetched_heads_are_verified_then_loaded(standin: Files, isolated: None, tmp_path: Path) -> None:
    """The heads go through the download and verification SyncNet's weights use (a stand-in spec for the bytes)."""
    trunk, heads = standin("alex")
    published = tmp_path / "published" / LPIPS_ALEX.filename
    published.parent.mkdir()
    published.write_bytes(heads.read_bytes())
    spec = replace(
        LPIPS_ALEX,
        size=published.stat().st_size,
        sha256=hashlib.sha256(published.read_bytes()).hexdigest(),
        urls=(published.as_uri(),),
    )
    fetched = resolve_weights(spec, progress=False)
    assert (fetched.source, fetched.custom) == ("download", False)
    loaded = load_lpips("alex", resolve_weights(ALEXNET, trunk), fetched)
    assert torch.equal(loaded.heads.lin0.model[0].weight, torch.load(heads, weights_only=True)["lin0.model.1.weight"])  # type: ignore[union-attr,index]  # nn.Module.__getattr__ is typed Tensor | Module


@pytest.mark.parametrize("spec", [ALEXNET, LPIPS_ALEX, VGG16, LPIPS_VGG], ids=lambda spec: spec.name)
def test_registry_entries_pin_the_released_files(spec: WeightsSpec) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256) and spec.size > 0
    assert all(url.startswith("https://") and url.rsplit("/", 1)[1] == spec.filename for url in spec.urls)
    assert spec in QUALITY and spec not in RELEASED


@pytest.mark.parametrize("spec", [ALEXNET, VGG16], ids=lambda spec: spec.name)
def test_torchvision_file_names_carry_the_start_of_their_hash(spec: WeightsSpec) -> None:
    named = re.fullmatch(r".*-([0-9a-f]{8})\.pth", spec.filename)
    assert named is not None and spec.sha256.startswith(named.group(1))


def test_an_unknown_network_is_a_usage_error(standin: Files) -> None:
    trunk, heads = standin("alex")
    trunk_weights, heads_weights = resolve_weights(ALEXNET, trunk), resolve_weights(LPIPS_ALEX, heads)
    with pytest.raises(ConfigError, match="must be one of alex, vgg, not 'squeeze'"):
        load_lpips("squeeze", trunk_weights, heads_weights)  # type: ignore[arg-type]  # deliberately no network's name


def test_only_equal_uint8_rgb_batches_are_compared(model: Models) -> None:
    gt = frames(1, 64, seed=6)
    with pytest.raises(TypeError, match="uint8"):
        lpips(gt.astype(np.float32), gt.astype(np.float32), model("alex"))
    with pytest.raises(ValueError, match="differ in shape"):
        lpips(gt, gt[:, :32], model("alex"))
