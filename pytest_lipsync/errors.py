"""The error hierarchy.

Every failure a user can cause or meet is a :class:`LipsyncError` with a stable ``kind`` (it is what the
JSON, the terminal table and ``allow = [...]`` in the gate refer to) and a message that names the file,
says what is wrong and what to do about it. Callers never need to parse messages: ``kind`` and ``facts``
carry the machine-readable part.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

# File types other than a regular file, as messages name them.
_SPECIAL_FILES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class LipsyncError(Exception):
    """Base class: ``kind`` identifies the failure, ``facts`` holds its numbers for reports."""

    kind: ClassVar[str] = "error"

    def __init__(
        self,
        what: str,
        *,
        path: str | Path | None = None,
        hint: str | None = None,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.hint = hint
        self.facts: dict[str, Any] = dict(facts or {})
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.path}: {self.what}" if self.path else self.what
        return f"{text}. {self.hint}" if self.hint else text


def not_a_regular_file(path: str | Path) -> str | None:
    """Why ``path`` must not be opened ("is a FIFO, not a regular file", ...), or ``None`` for a regular file.

    Opening a FIFO for reading waits for a writer (forever, for a stray one), and a device or a socket may never
    end, so every file this package reads (videos, ground truth, weights, a ``file://`` mirror) is checked with
    this first: ``stat`` never blocks. ``None`` too for a path that does not exist: callers say that their way.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    special = next((name for is_type, name in _SPECIAL_FILES if is_type(mode)), None)
    return None if special is None else f"is {special}, not a regular file"


class ConfigError(LipsyncError):
    """A setting, flag or command-line argument is malformed (exit code 2)."""

    kind = "usage"


class WeightsError(LipsyncError):
    """Model weights are missing, corrupt, unsafe or of the wrong architecture."""

    kind = "weights"


class VideoError(LipsyncError):
    """One video cannot be scored; other videos are unaffected."""

    kind = "video_error"


class NotFoundError(VideoError):
    kind = "not_found"


class UnreadableError(VideoError):
    kind = "unreadable"


class NoVideoStreamError(VideoError):
    kind = "no_video_stream"


class NoAudioStreamError(VideoError):
    kind = "no_audio_stream"


class TooShortError(VideoError):
    kind = "too_short"


class NoFaceTrackError(VideoError):
    kind = "no_face_track"


class SilentAudioError(VideoError):
    """The audio has no sound (fewer than one SyncNet window of 40 ms frames above -70 dBFS): SyncNet would still
    give numbers, but they would mean nothing."""

    kind = "silent_audio"


class NonFiniteError(VideoError):
    """SyncNet's distances came out NaN or infinite: a score that is not a number can neither pass nor fail a gate."""

    kind = "non_finite"


class DecodeError(VideoError):
    kind = "decode_error"


class TooLargeError(VideoError):
    kind = "too_large"


class ScoringTimeoutError(VideoError):
    kind = "timeout"


class ReferenceMismatchError(VideoError):
    kind = "reference_mismatch"


class NoReferenceError(VideoError):
    """Ground truth was asked for (a reference directory) but none matches this video."""

    kind = "no_reference"


class WorkerCrashedError(VideoError):
    """The process scoring this video died (a ``lipsync score --workers N`` child, a pytest-xdist worker); the
    other videos are scored."""

    kind = "worker_crashed"
