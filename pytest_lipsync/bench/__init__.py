"""``lipsync bench``: speed and memory of scoring, stage by stage, against the bare models.

One module per concern: ``plan`` (what to run: presets, clips, protocols, setting variants), ``clips``
(generated and given clips), ``models`` (released or stand-in weights, the counting detector), ``bare``
(model forward passes alone), ``frame_metrics`` (LPIPS, FID and CPBD against their bare computation) and
``peers`` (the peer scripts' loops they are compared with), ``child`` (one run in a fresh process), ``driver``
(runs every child and derives the numbers), ``report`` (tables) and ``command`` (the CLI).
"""
