"""SyncNet scoring of one track: 224x224 BGR crops and int16 audio in, a :class:`SyncCurve` out.

Crops stream in batches and are embedded as soon as a batch of windows is complete, so memory holds one
batch of crops plus the embeddings (8 KB per window), never the track's frames.

Which windows count follows the reference exactly: ``min_length = min(frames, samples // 640)`` and
windows ``0 .. min_length - 6`` (its loop stops one short of the last valid window). Window ``i`` is
therefore scored once frame ``i + 5`` has arrived and the audio reaches past frame ``i + 5``. Every frame
is still consumed, so that the caller learns the video's true length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from pytest_lipsync.limits import Deadline
from pytest_lipsync.media.decode import SAMPLES_PER_FRAME
from pytest_lipsync.progress import Stage, VideoProgress
from pytest_lipsync.settings import Precision
from pytest_lipsync.sync.distances import SyncCurve, offset_distances, sync_curve
from pytest_lipsync.sync.mfcc import COLUMNS_PER_FRAME, mfcc_columns
from pytest_lipsync.sync.model import LIP_FRAMES, MFCC_COLUMNS, SyncNet

# Frames a window needs, plus the one that proves it is not the dropped last window.
_LOOKAHEAD = LIP_FRAMES


class TrackTooShort(Exception):
    """Fewer than six frames of both sound and picture: not one window can be scored."""

    def __init__(self, frames: int, audio_frames: int) -> None:
        self.frames = frames
        self.audio_frames = audio_frames
        super().__init__(f"{frames} frames, {audio_frames} frames of audio")


@dataclass
class Timings:
    """Seconds spent per stage, accumulated over a video.

    Every loop of the scoring stages times each batch here, so this is also where the video's ``deadline``
    is checked: past it, :meth:`add` raises ``ScoringTimeoutError`` between two batches. A batch is at most one
    forward pass (``batch_size`` SyncNet windows, or ``FRAME_BATCH`` frames through the detector), the step a
    check cannot interrupt: the limit is overshot by one such pass at most.

    The same loops count their work in :meth:`count` for whoever watches (``progress``, set by a front-end):
    the stages never decide how, or whether, progress is shown.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    deadline: Deadline | None = None
    progress: VideoProgress | None = None

    def count(self, stage: Stage, done: int) -> None:
        if self.progress is not None:
            self.progress.advance(stage, done)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        if self.deadline is not None:
            self.deadline.check()
        return now


class SyncScorer:
    """Embeds windows in batches on one device; reusable across tracks and videos.

    With ``precision`` bf16/fp16 the forward passes run under autocast and the embeddings come back as
    float32, so the distances keep the reference's dtype."""

    def __init__(self, net: SyncNet, device: torch.device, batch_size: int = 32, precision: Precision = "fp32") -> None:
        from pytest_lipsync.models.runtime import check_precision

        check_precision(precision, device)
        self.net = net
        self.device = device
        self.batch_size = batch_size
        self.precision = precision

    def score_track(self, crops: Iterable[np.ndarray], audio: np.ndarray, timings: Timings) -> tuple[SyncCurve, int]:
        """The curve of one track and its number of windows; raises :class:`TrackTooShort`."""
        return self.curve(*self.embed_track(crops, audio, timings), timings)

    def curve(self, lip: torch.Tensor, aud: torch.Tensor, timings: Timings) -> tuple[SyncCurve, int]:
        """The distance curve of a track's embeddings, and its number of windows."""
        clock = time.perf_counter()
        curve = sync_curve(offset_distances(lip, aud))
        timings.add("distances", clock)
        return curve, len(lip)

    def embed_track(
        self, crops: Iterable[np.ndarray], audio: np.ndarray, timings: Timings
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio embeddings (N, 1024) of the windows the reference scores."""
        embedder = self.embedder(audio, timings)
        clock = time.perf_counter()
        for batch in crops:
            timings.add("decode", clock)
            embedder.add(batch)
            clock = time.perf_counter()
        timings.add("decode", clock)
        return embedder.finish()

    def embedder(self, audio: np.ndarray, timings: Timings) -> TrackEmbedder:
        """A push-style embedder for one track, for callers that make several tracks' crops at once."""
        return TrackEmbedder(self, audio, timings)

    @torch.inference_mode()
    def embed_windows(
        self,
        pending: list[np.ndarray],
        first: int,
        count: int,
        audio: np.ndarray,
        lip: list[torch.Tensor],
        aud: list[torch.Tensor],
    ) -> None:
        from pytest_lipsync.models.runtime import autocast, to_device

        frames = np.stack(pending[: count + LIP_FRAMES - 1])  # (L, 224, 224, 3) uint8 BGR
        video = to_device(frames, self.device).permute(3, 0, 1, 2).float()
        start = first * COLUMNS_PER_FRAME
        columns = mfcc_columns(audio, start, start + (count - 1) * COLUMNS_PER_FRAME + MFCC_COLUMNS)
        windows = np.lib.stride_tricks.sliding_window_view(columns, MFCC_COLUMNS, axis=1)[:, ::COLUMNS_PER_FRAME]
        mfcc = to_device(
            np.ascontiguousarray(windows.transpose(1, 0, 2), dtype=np.float32), self.device
        )  # (count, 13, 20)
        with autocast(self.precision, self.device):
            lip_embeddings = self.net.forward_lip_sequence(video)
            aud_embeddings = self.net.forward_aud(mfcc.unsqueeze(1))
        lip.append(lip_embeddings.float().cpu())
        aud.append(aud_embeddings.float().cpu())


class TrackEmbedder:
    """Embeds one track's windows as its crops are pushed in: memory holds one batch of crops.

    Window ``i`` is embedded once frame ``i + 5`` has arrived (it proves ``i`` is not the dropped last
    window); frames past what the audio allows are only counted.
    """

    def __init__(self, scorer: SyncScorer, audio: np.ndarray, timings: Timings) -> None:
        self._scorer = scorer
        self._audio = audio
        self._timings = timings
        self._audio_frames = len(audio) // SAMPLES_PER_FRAME
        self._limit = self._audio_frames - _LOOKAHEAD  # windows the audio allows
        self._lip: list[torch.Tensor] = []
        self._aud: list[torch.Tensor] = []
        self._pending: list[np.ndarray] = []
        self._done = 0  # windows embedded so far == index of the first pending frame
        self._seen = 0

    def add(self, batch: np.ndarray) -> None:
        """The next (B, 224, 224, 3) uint8 BGR crops of the track; the deadline is checked after each forward pass,
        however many the batch makes."""
        clock = time.perf_counter()
        self._seen += len(batch)
        if self._done < self._limit:
            self._pending.extend(batch)
        size = self._scorer.batch_size
        while len(self._pending) >= size + _LOOKAHEAD and self._done < self._limit:
            self._embed(min(size, self._limit - self._done))
            clock = self._timings.add("syncnet", clock)
        if self._done >= self._limit:
            self._pending.clear()
        self._timings.add("syncnet", clock)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio embeddings (N, 1024); raises :class:`TrackTooShort` when there is no window."""
        clock = time.perf_counter()
        remaining = min(len(self._pending) - _LOOKAHEAD, self._limit - self._done)
        if remaining > 0:
            self._embed(remaining)
        self._pending.clear()
        self._timings.add("syncnet", clock)
        if self._done == 0:
            raise TrackTooShort(self._seen, self._audio_frames)
        return torch.cat(self._lip), torch.cat(self._aud)

    def _embed(self, count: int) -> None:
        self._scorer.embed_windows(self._pending, self._done, count, self._audio, self._lip, self._aud)
        del self._pending[:count]
        self._done += count
        self._timings.count("windows", count)
