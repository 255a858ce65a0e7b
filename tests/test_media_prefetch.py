"""The decoding thread: order, errors, clean shutdown, and yielding to CPU models (``background``)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from pytest_lipsync.media.prefetch import prefetch


def _priorities(log: list[int], count: int) -> Iterator[int]:
    """Items that record the nice value of the thread producing them."""
    for item in range(count):
        log.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        yield item


def test_items_arrive_in_order_and_the_thread_ends() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert not any(thread.name == "lipsync-prefetch" for thread in threading.enumerate())


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    seen: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        seen.extend(prefetch(failing()))
    assert seen == [1]


def test_closing_early_stops_the_producer() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        while True:
            produced.append(len(produced))
            yield produced[-1]

    items = prefetch(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert not any(thread.name == "lipsync-prefetch" for thread in threading.enumerate())
    assert len(produced) <= 5  # the queue's depth bounds what was made ahead


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are a Linux feature")
def test_a_background_producer_runs_at_the_lowest_priority_and_the_consumer_keeps_its_own() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    background: list[int] = []
    foreground: list[int] = []
    assert list(prefetch(_priorities(background, 3), background=True)) == [0, 1, 2]
    assert list(prefetch(_priorities(foreground, 3))) == [0, 1, 2]
    assert background == [19] * 3
    assert foreground == [mine] * 3
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
