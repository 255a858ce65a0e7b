"""The scoring core: :class:`~pytest_lipsync.scoring.scorer.Scorer` turns a video file into a ``VideoScore``.

It composes the stages (media, faces, sync, quality) in one of two protocols: ``pipeline`` (scene cuts,
face detection, tracking, cropping, then every track scored) and ``cropped`` (the frames already are the
face crops). Both front-ends and the worker pool score through it.
"""
