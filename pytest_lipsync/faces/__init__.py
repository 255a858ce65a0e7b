"""The pipeline protocol's face stages: scene cuts, S3FD, tracking and cropping (docs/protocol.md).

Each stage is a plain function or a small class on numpy arrays (``scenes``, ``s3fd``, ``tracking``,
``crop``); ``plugin`` loads a user detector in place of S3FD, and ``pipeline`` composes the stages with SyncNet
in two passes over the video. Nothing is imported here, so that importing the package never pulls in torch,
OpenCV or PySceneDetect.
"""
