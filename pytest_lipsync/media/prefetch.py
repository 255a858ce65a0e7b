"""Run a producer (decoding, re-encoding, cropping) on a thread while the models work.

PyAV, OpenCV and torch all release the GIL in their heavy calls, so a bounded queue between one decoding
thread and the scoring thread overlaps the two without copying more than ``depth`` batches.

When the models run on the CPU they already use every core, and an OpenMP parallel region runs only as fast
as its slowest thread: a decoding thread that takes a core from one of torch's threads stalls them all, and
cost S3FD about three times the decoding's own CPU time in reference fidelity at 1080p on two cores. A
``background`` producer therefore runs at the lowest priority (Linux: per-thread nice 19), so that it fills
the gaps between forward passes and otherwise waits its turn rather than preempting the models.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2, *, background: bool = False) -> Generator[T, None, None]:
    """Yield ``items`` as produced on another thread, at the lowest priority if ``background``; its
    exceptions re-raise here. A generator, so that ``close()`` stops the thread when the consumer leaves early."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        if background:
            lower_priority()
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
            buffer.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(exc)

    worker = threading.Thread(target=produce, name="lipsync-prefetch", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # an item: _DONE and exceptions were handled above
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                buffer.get(timeout=0.05)
        worker.join()


def lower_priority() -> None:
    """Give the calling thread the lowest CPU priority; threads it starts (FFmpeg's decoders) inherit it.

    Linux only, where nice is per thread; elsewhere, or if refused, the thread keeps its priority.
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
