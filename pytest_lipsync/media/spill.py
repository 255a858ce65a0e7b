"""Encoded frames kept on disk from the pipeline's first pass for its second.

In ``reference`` fidelity every frame goes H.264 -> MPEG-4 q2 -> JPEG q2 before detection and cropping see
it (docs/protocol.md): about 25 ms of CPU per 1080p frame on top of the video's own decoding. Pass 2 needs the
same JPEG frames again; rather than replaying the chain, pass 1 keeps the JPEG bytes, as the reference keeps
its JPEG files, and pass 2 only decodes them (about 5 ms). The file is unnamed, so it disappears when closed
or when the process dies, and it never takes more than half the free space of the temporary directory: past
that budget, or when a write fails, the copy is dropped and pass 2 replays the chain as before (slower,
the same frames).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import BinaryIO


class SpilledFrames:
    """An append-only sequence of encoded frames in a temporary file, with a byte budget.

    Use as a context manager: the file is closed on exit. ``keep`` passes frames through while storing them;
    ``holds(n)`` says whether the first ``n`` are all there, and ``read(n)`` streams them back in order.
    """

    def __init__(self, budget: int | None = None) -> None:
        self._file: BinaryIO | None = None
        self._ends: list[int] = []  # end offset of each stored frame
        try:
            self._budget = free_space_budget() if budget is None else budget
            # Held open for the object's lifetime and closed by drop() (or __exit__), not by a with block.
            self._file = tempfile.TemporaryFile(prefix="lipsync-frames-")  # noqa: SIM115
        except OSError:  # no usable temporary directory: nothing is kept, pass 2 replays
            self._file = None

    def __enter__(self) -> SpilledFrames:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.drop()

    @property
    def stored(self) -> int:
        """How many frames are kept (0 once dropped)."""
        return len(self._ends)

    def keep(self, frames: Iterable[bytes]) -> Iterator[bytes]:
        """``frames`` unchanged, each appended to the file while the budget allows and writes succeed."""
        for data in frames:
            if self._file is not None:
                self._append(self._file, data)
            yield data

    def holds(self, count: int) -> bool:
        return self._file is not None and len(self._ends) >= count

    def read(self, count: int) -> Iterator[bytes]:
        """The first ``count`` frames as stored; call only when :meth:`holds` says they are all there."""
        if not self.holds(count):
            raise ValueError(f"{count} frames asked for, {len(self._ends)} kept")
        file = self._file
        assert file is not None
        file.seek(0)
        start = 0
        for end in self._ends[:count]:
            yield file.read(end - start)
            start = end

    def drop(self) -> None:
        """Close and forget the file; later frames pass through without being kept."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._ends = []

    def _append(self, file: BinaryIO, data: bytes) -> None:
        end = (self._ends[-1] if self._ends else 0) + len(data)
        if end > self._budget:
            self.drop()
            return
        try:
            file.write(data)
        except (OSError, ValueError):  # the disk filled up, or the video failed and closed the file under us
            self.drop()
            return
        self._ends.append(end)


def free_space_budget() -> int:
    """Half the free space in the temporary directory: kept frames never fill a disk."""
    return shutil.disk_usage(tempfile.gettempdir()).free // 2
