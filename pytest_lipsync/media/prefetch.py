"""Run a producer (decoding, re-encoding, cropping) on a thread while the models work.

PyAV, OpenCV and torch all release the GIL in their heavy calls, so a bounded queue between one decoding
thread and the scoring thread overlaps the two without copying more than ``depth`` batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` as produced on a background thread; its exceptions re-raise here."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
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
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
