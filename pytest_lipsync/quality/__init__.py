"""Frame quality against ground truth: PSNR and SSIM equal to scikit-image's, fast and streaming.

``psnr`` / ``ssim``: the per-frame functions (OpenCV on the CPU, torch elsewhere); ``accumulate``: a video
against its reference, into a ``QualityResult``; ``pairing``: which reference; ``alignment``: whether the
two can be compared. Importing the package loads none of the heavy libraries.
"""
