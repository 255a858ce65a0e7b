"""Deterministic synthetic media and stand-in model weights, for the tests and ``lipsync bench``.

Installed with the package so that ``lipsync bench`` can make its own clips and, without the released
weights, time the models with stand-ins. Numbers computed with stand-in weights test arithmetic and speed
only: they say nothing about lip sync and are never reported as results.
"""
