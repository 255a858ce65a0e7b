"""One unit of scoring work: a video's key, its file and its ground truth.

``session.videos`` makes these from the paths a user gives; the scorer, the worker pool and the Ray executor
take them. It lives in the scoring layer so that everything below the session can name the work it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lipsync.quality.pairing import ReferenceMatch

if TYPE_CHECKING:
    from pytest_lipsync.results import ScoreError


@dataclass(frozen=True)
class VideoEntry:
    """A video to score: its key, the file, and its ground truth (``None``: none configured)."""

    key: str
    path: Path
    ground_truth: ReferenceMatch | None = None

    @property
    def reference(self) -> Path | None:
        """The ground-truth file, when one was found."""
        return None if self.ground_truth is None else self.ground_truth.reference

    @property
    def reference_error(self) -> ScoreError | None:
        """Why ground truth was configured but none was found for this video (``no_reference``,
        ``reference_mismatch``)."""
        return None if self.ground_truth is None else self.ground_truth.error

    def with_reference(self, reference: Path) -> VideoEntry:
        """This video compared with ``reference``, a file the caller names."""
        return replace(self, ground_truth=ReferenceMatch(self.path, reference, "explicit"))
