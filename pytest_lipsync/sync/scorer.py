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

from pytest_lipsync.media.decode import SAMPLES_PER_FRAME
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
    """Seconds spent per stage, accumulated over a video."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


class SyncScorer:
    """Embeds windows in batches on one device; reusable across tracks and videos."""

    def __init__(self, net: SyncNet, device: torch.device, batch_size: int = 32) -> None:
        self.net = net
        self.device = device
        self.batch_size = batch_size

    def score_track(self, crops: Iterable[np.ndarray], audio: np.ndarray, timings: Timings) -> tuple[SyncCurve, int]:
        """The curve of one track and its number of windows; raises :class:`TrackTooShort`."""
        lip, aud = self.embed_track(crops, audio, timings)
        clock = time.perf_counter()
        curve = sync_curve(offset_distances(lip, aud))
        timings.add("distances", clock)
        return curve, len(lip)

    def embed_track(
        self, crops: Iterable[np.ndarray], audio: np.ndarray, timings: Timings
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio embeddings (N, 1024) of the windows the reference scores."""
        audio_frames = len(audio) // SAMPLES_PER_FRAME
        limit = audio_frames - _LOOKAHEAD  # windows the audio allows
        lip: list[torch.Tensor] = []
        aud: list[torch.Tensor] = []
        pending: list[np.ndarray] = []
        done = 0  # windows embedded so far == index of the first pending frame
        seen = 0
        clock = time.perf_counter()
        for batch in crops:
            seen += len(batch)
            if done < limit:  # past the audio, frames are only counted
                pending.extend(batch)
            clock = timings.add("decode", clock)
            while len(pending) >= self.batch_size + _LOOKAHEAD and done < limit:
                count = min(self.batch_size, limit - done)
                self._embed(pending, done, count, audio, lip, aud)
                del pending[:count]
                done += count
            if done >= limit:
                pending.clear()
            clock = timings.add("syncnet", clock)
        remaining = min(len(pending) - _LOOKAHEAD, limit - done)
        if remaining > 0:
            self._embed(pending, done, remaining, audio, lip, aud)
            done += remaining
        timings.add("syncnet", clock)
        if done == 0:
            raise TrackTooShort(seen, audio_frames)
        return torch.cat(lip), torch.cat(aud)

    @torch.inference_mode()
    def _embed(
        self,
        pending: list[np.ndarray],
        first: int,
        count: int,
        audio: np.ndarray,
        lip: list[torch.Tensor],
        aud: list[torch.Tensor],
    ) -> None:
        frames = np.stack(pending[: count + LIP_FRAMES - 1])  # (L, 224, 224, 3) uint8 BGR
        video = torch.from_numpy(frames).to(self.device).permute(3, 0, 1, 2).float()
        lip.append(self.net.forward_lip_sequence(video).float().cpu())
        start = first * COLUMNS_PER_FRAME
        columns = mfcc_columns(audio, start, start + (count - 1) * COLUMNS_PER_FRAME + MFCC_COLUMNS)
        windows = np.lib.stride_tricks.sliding_window_view(columns, MFCC_COLUMNS, axis=1)[:, ::COLUMNS_PER_FRAME]
        mfcc = torch.from_numpy(np.ascontiguousarray(windows.transpose(1, 0, 2))).float()  # (count, 13, 20)
        aud.append(self.net.forward_aud(mfcc.unsqueeze(1).to(self.device)).float().cpu())
