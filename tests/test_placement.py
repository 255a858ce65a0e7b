"""Worker placement (one GPU per process, or a share of the cores) and sharding, on faked device lists."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.scale.placement import (
    Placement,
    apply,
    driver_gpu_count,
    parse_gpus,
    place,
    placement_for,
    visible_devices,
    worker_index,
)
from pytest_lipsync.scale.sharding import Shard, assign, select


def four() -> int:
    return 4


def test_devices_come_from_the_driver_when_cuda_visible_devices_is_unset() -> None:
    assert visible_devices({}, count=four) == ("0", "1", "2", "3")
    assert visible_devices({}, "0,2", count=four) == ("0", "2")


def test_an_existing_cuda_visible_devices_is_honoured_and_gpus_index_into_it() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "4,5, GPU-abc"}
    assert visible_devices(environ, count=four) == ("4", "5", "GPU-abc")
    assert visible_devices(environ, "2,0", count=four) == ("GPU-abc", "4")
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}, count=four) == ()
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}, count=four) == ()


def test_gpus_naming_an_invisible_device_or_malformed_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"names device 5, but this machine shows 4 \(CUDA_VISIBLE_DEVICES=unset\)"):
        visible_devices({}, "0,5", count=four)
    for bad in ("a", "0,,1", "1,1", "-1"):
        with pytest.raises(ConfigError, match="gpus is"):
            parse_gpus(bad)


def test_workers_round_robin_over_devices_more_workers_than_gpus() -> None:
    devices = ("4", "6")
    assert [place(i, 5, devices, 16).cuda_visible_devices for i in range(5)] == ["4", "6", "4", "6", "4"]
    assert place(0, 5, devices, 16).threads is None


def test_cpu_only_workers_split_the_cores() -> None:
    assert place(0, 2, (), 16) == Placement(threads=8)
    assert place(3, 3, (), 8) == Placement(threads=2)
    assert place(0, 32, (), 8) == Placement(threads=1)


def test_explicit_device_is_not_repinned(tmp_path: Path) -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert placement_for(1, 2, "auto", None, environ, cores=4).cuda_visible_devices == "1"
    assert placement_for(1, 2, "cuda:0", None, environ, cores=4) == Placement(threads=2)
    assert placement_for(1, 2, "cpu", "0,9", environ, cores=4) == Placement(threads=2)  # gpus unused on cpu


def test_apply_sets_the_environment_but_keeps_a_users_thread_count() -> None:
    environ: dict[str, str] = {}
    apply(Placement(cuda_visible_devices="3"), environ)
    assert environ == {"CUDA_VISIBLE_DEVICES": "3"}
    environ = {"OMP_NUM_THREADS": "7"}
    apply(Placement(threads=2), environ)
    assert environ == {"OMP_NUM_THREADS": "7"}
    apply(Placement(threads=2), environ := {})
    assert environ == {"OMP_NUM_THREADS": "2"}


def test_driver_count_reads_proc_entries(tmp_path: Path) -> None:
    for name in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / name).mkdir()
    assert driver_gpu_count(tmp_path) == 2
    assert driver_gpu_count(tmp_path / "absent") == 0


def test_worker_index() -> None:
    assert worker_index("gw12") == 12
    with pytest.raises(ValueError):
        worker_index("master")


def _sizes(seed: int, count: int) -> dict[str, int]:
    generator = random.Random(seed)
    return {f"v/{n:03d}.mp4": generator.randint(1, 10_000) for n in range(count)}


@pytest.mark.parametrize(("seed", "videos", "shards"), [(0, 50, 4), (1, 7, 3), (2, 3, 5), (3, 120, 7)])
def test_shards_partition_the_videos_and_balance_within_one_video(seed: int, videos: int, shards: int) -> None:
    sizes = _sizes(seed, videos)
    parts = [select(sizes, Shard(i, shards)) for i in range(1, shards + 1)]
    assert sorted(key for part in parts for key in part) == sorted(sizes)  # each video in exactly one shard
    loads = [sum(sizes[key] for key in part) for part in parts]
    assert max(loads) - min(loads) <= max(sizes.values())


def test_shards_are_stable_whatever_order_the_videos_come_in() -> None:
    sizes = _sizes(5, 40)
    shuffled = dict(sorted(sizes.items(), key=lambda item: random.Random(9).random()))
    assert assign(sizes, 3) == assign(shuffled, 3)
    assert assign({"b": 5, "a": 5, "c": 1}, 2) == {"a": 1, "b": 2, "c": 1}


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_malformed_shards_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r'Write "i/n" with 1 <= i <= n'):
        Shard.parse(bad)
    assert str(Shard.parse(" 2 / 4 ")) == "2/4"


def test_pytest_processes_controller_checks_workers_pin() -> None:
    from pytest_lipsync.scale.placement import place_pytest_process

    environ = {"CUDA_VISIBLE_DEVICES": "3,5"}
    assert place_pytest_process(None, "auto", "1", environ) is None and environ == {"CUDA_VISIBLE_DEVICES": "3,5"}
    with pytest.raises(ConfigError, match="names device 2"):
        place_pytest_process(None, "auto", "2", environ)
    placed = place_pytest_process({"workerid": "gw1", "workercount": 2}, "auto", None, environ)
    assert placed == Placement(cuda_visible_devices="5") and environ["CUDA_VISIBLE_DEVICES"] == "5"
