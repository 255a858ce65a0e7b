"""PSNR/SSIM of a generated video file against its ground-truth file: the public entry point, no SyncNet needed.

Both files go through the same 25 fps decoding as LSE (:class:`~pytest_lipsync.media.decode.VideoSource`), in
RGB, in small batches decoded on background threads while the metrics run, so memory holds a few batches per
video whatever its length. Frame i is compared with frame i by the rules of :mod:`.alignment` (sizes must agree
unless ``resize_reference``; lengths may differ by ``max_length_mismatch`` frames). With ``region = "face"``
the measures run on the face crops of the generated video's tracks instead (:mod:`.face`), cut from the same
decoded frames.

**Infinite PSNR.** Identical frames have infinite PSNR. Results cap each frame's PSNR at 100 dB
(:data:`~pytest_lipsync.quality.psnr.PSNR_CAP_DB`), average the capped values, and count the identical frames
in ``identical_frames``; the JSON is therefore standard (no ``Infinity`` or ``NaN``), and a mean of 100 with
``identical_frames == frames`` is a perfect copy. See :mod:`.psnr` for why 100 dB.

**Failures.** Anything wrong on the reference side (it cannot be opened or decoded, another size, another
length) is a :class:`ReferenceMismatchError` (kind ``reference_mismatch``) naming the generated video, the
reference and the numbers, so that it reads as "this pair cannot be compared", whichever file is at fault.
Problems of the generated video itself keep their own kinds (``not_found``, ``unreadable``, ...), as in LSE.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path

import numpy as np

from pytest_lipsync.errors import ConfigError, ReferenceMismatchError, ScoringTimeoutError, VideoError
from pytest_lipsync.limits import VideoLimits
from pytest_lipsync.quality.accumulate import Measure, QualityAccumulator, QualityResult, compare_streams
from pytest_lipsync.quality.face import FaceCropAccumulator, FaceRegions
from pytest_lipsync.quality.settings import QualitySettings

# A 1080p RGB frame is 6 MB; each video holds at most four batches (two queued, one being decoded, one being
# measured): about 100 MB per video at 1080p, whatever its length. Larger batches buy nothing on the CPU.
BATCH_SIZE = 4


def compare_videos(
    generated: Path,
    reference: Path,
    settings: QualitySettings = QualitySettings(),
    device: str = "cpu",
    *,
    batch_size: int = BATCH_SIZE,
    faces: FaceRegions | None = None,
    limits: VideoLimits = VideoLimits(),
    measures: Mapping[str, Measure] | None = None,
) -> QualityResult:
    """PSNR/SSIM of ``generated`` against ``reference``, frame by frame (``device``: ``"cpu"`` or a torch device).

    ``faces``: the generated video's face tracks, which ``region = "face"`` needs (a :class:`ConfigError`
    without them) and measures in; the frame region does not use them. Raises
    :class:`ReferenceMismatchError` when the pair cannot be compared and the :class:`VideoError` of the
    generated video when it cannot be read. ``limits`` apply to both files as to LSE's (a ground truth is as
    untrusted as a generated video): frame size, damaged frames, and a time limit of its own per file.
    ``measures``: opt-in per-frame metrics (LPIPS, CPBD) measured on the same pairs as PSNR/SSIM.
    """
    from pytest_lipsync.media.decode import open_video
    from pytest_lipsync.media.prefetch import prefetch

    accumulator = None
    if settings.region == "face":
        if faces is None:
            raise ConfigError(
                "region 'face' measures inside the generated video's face tracks, and none were given",
                hint="Pass faces=FaceRegions(tracks), score through a Scorer with protocol = 'pipeline', or use "
                "region = 'frame'",
            )
        accumulator = FaceCropAccumulator(faces, settings, device, video=generated, measures=measures)
    generated_frames = open_video(generated, limits).frames(batch_size, pix_fmt="rgb24")
    # Closed on the way out, error or not, so that a mismatch found early stops both decoding threads at once.
    with (
        closing(prefetch(generated_frames)) as generated_batches,
        closing(prefetch(_reference_frames(generated, reference, batch_size, limits))) as reference_batches,
    ):
        return compare_streams(
            generated_batches,
            reference_batches,
            settings,
            device=device,
            video=generated,
            reference_path=reference,
            accumulator=accumulator or QualityAccumulator(settings, device, measures),
        )


def _reference_frames(generated: Path, reference: Path, batch_size: int, limits: VideoLimits) -> Iterator[np.ndarray]:
    """The reference's RGB batches; its read errors become mismatches of the pair (module docstring)."""
    from pytest_lipsync.media.decode import open_video

    try:
        yield from open_video(reference, limits).frames(batch_size, pix_fmt="rgb24")
    except ScoringTimeoutError:
        raise  # the machine was slow, not the pair mismatched: it must not be cached as the pair's verdict
    except VideoError as exc:
        raise ReferenceMismatchError(
            f"its reference {reference} cannot be compared: {exc.what}",
            path=generated,
            hint=exc.hint,
            facts={"reference": str(reference), "reference_error": exc.kind, **exc.facts},
        ) from exc
