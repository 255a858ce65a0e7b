"""Which device and how many CPU threads one of several scoring processes gets.

Several processes on one machine (pytest-xdist workers, ``lipsync score --workers N``) must not all load
their models onto the first GPU, nor each start one thread per core. Every process is pinned before CUDA
initialises, by setting ``CUDA_VISIBLE_DEVICES`` to one device: then ``device = "auto"`` (or ``"cuda"``)
means that device, and nothing else needs to know about the others.

Counting devices must not initialise CUDA (``torch.cuda.device_count()`` imports torch and, in some
versions, the driver), so the visible devices come from, in order: the ``gpus`` setting (ordinals of
the devices this process sees, as in ``cuda:N``), an existing ``CUDA_VISIBLE_DEVICES`` (its entries, ids
or UUIDs, kept as written), or the NVIDIA driver's ``/proc/driver/nvidia/gpus/*`` entries (one per GPU,
numbered as CUDA numbers them by default only when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; what counts here
is how many there are). No NVIDIA driver means no GPUs: the processes share the CPU cores instead.
Pure functions over plain values: the callers pass the environment, the process index and the count.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_lipsync.errors import ConfigError

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
_WORKER_ID = re.compile(r"^gw(\d+)$")
_ORDINALS = re.compile(r"^\d+(,\d+)*$")


@dataclass(frozen=True)
class Placement:
    """One process's share: the ``CUDA_VISIBLE_DEVICES`` value to set (``None``: leave it), or the CPU
    threads it may use (``None``: torch's default)."""

    cuda_visible_devices: str | None = None
    threads: int | None = None

    def environment(self) -> dict[str, str]:
        """The variables that make the placement take effect when set before torch initialises."""
        env = {}
        if self.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,2"`` -> (0, 2); the ``gpus`` setting is a comma-separated list of device ordinals."""
    cleaned = text.replace(" ", "")
    if not _ORDINALS.match(cleaned):
        raise ConfigError(f"gpus is {text!r}", hint='Write device ordinals separated by commas, e.g. "0,2"')
    ordinals = tuple(int(part) for part in cleaned.split(","))
    if len(set(ordinals)) != len(ordinals):
        raise ConfigError(f"gpus is {text!r}, which names a device twice", hint='Name each device once, e.g. "0,2"')
    return ordinals


def worker_index(worker_id: str) -> int:
    """``"gw3"`` -> 3 (pytest-xdist's worker ids)."""
    match = _WORKER_ID.match(worker_id)
    if match is None:
        raise ValueError(f"{worker_id!r} is not a pytest-xdist worker id (gwN)")
    return int(match.group(1))


def driver_gpu_count(root: Path = NVIDIA_GPUS) -> int:
    """GPUs the NVIDIA driver lists, read from ``/proc`` without touching CUDA; 0 without the driver."""
    try:
        return sum(1 for _ in root.iterdir())
    except OSError:
        return 0


def visible_devices(
    environ: Mapping[str, str], gpus: str | None = None, count: Callable[[], int] = driver_gpu_count
) -> tuple[str, ...]:
    """The ``CUDA_VISIBLE_DEVICES`` entries the processes are spread over (empty: CPU only)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        raw = environ["CUDA_VISIBLE_DEVICES"].replace(" ", "")
        seen = tuple(part for part in raw.split(",") if part) if raw not in ("", "-1") else ()
    else:
        seen = tuple(str(n) for n in range(count()))
    if gpus is None:
        return seen
    chosen = parse_gpus(gpus)
    missing = [n for n in chosen if n >= len(seen)]
    if missing:
        raise ConfigError(
            f"gpus = {gpus!r} names device {missing[0]}, but this machine shows {len(seen)} "
            f"(CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES', 'unset')})",
            hint="Name ordinals of the visible devices, counted from 0",
        )
    return tuple(seen[n] for n in chosen)


def place(index: int, workers: int, devices: Sequence[str], cores: int) -> Placement:
    """Process ``index`` of ``workers``: round-robin over ``devices``; without devices, a fair share of
    the cores (at least one thread each)."""
    if devices:
        return Placement(cuda_visible_devices=devices[index % len(devices)])
    return Placement(threads=max(1, cores // max(1, workers)))


def pins_device(device: str) -> bool:
    """Only ``auto`` and ``cuda`` leave the choice of GPU open; ``cuda:N`` and ``cpu`` are the user's."""
    return device in ("auto", "cuda")


def placement_for(
    index: int, workers: int, device: str, gpus: str | None, environ: Mapping[str, str], cores: int | None = None
) -> Placement:
    """The placement of process ``index`` of ``workers`` scoring with ``device`` (see :func:`place`)."""
    devices = visible_devices(environ, gpus) if pins_device(device) else ()
    return place(index, workers, devices, cores or available_cores())


def apply(placement: Placement, environ: MutableMapping[str, str]) -> None:
    """Set the placement's variables; a thread count the user already set in ``OMP_NUM_THREADS`` wins.

    torch reads ``OMP_NUM_THREADS`` when it starts; a process that imported it already (a conftest did)
    gets ``torch.set_num_threads`` as well, which works until its thread pool has started."""
    user_threads = "OMP_NUM_THREADS" in environ
    for name, value in placement.environment().items():
        if name != "OMP_NUM_THREADS" or not user_threads:
            environ[name] = value
    torch = sys.modules.get("torch")
    if placement.threads is not None and not user_threads and torch is not None:
        torch.set_num_threads(placement.threads)


def place_pytest_process(
    workerinput: Mapping[str, object] | None, device: str, gpus: str | None, environ: MutableMapping[str, str]
) -> Placement | None:
    """Pin a pytest-xdist worker (``workerinput`` has its ``gwN`` id and the worker count) before CUDA
    initialises; in the controller (``None``), only check ``gpus``, so a bad value is one usage error
    rather than every worker failing to start."""
    if workerinput is None:
        if gpus is not None and pins_device(device):
            visible_devices(environ, gpus)
        return None
    workers = int(str(workerinput.get("workercount", 1)))
    placement = placement_for(worker_index(str(workerinput["workerid"])), workers, device, gpus, environ)
    apply(placement, environ)
    return placement


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, where the platform has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
