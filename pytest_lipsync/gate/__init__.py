"""Verdicts: thresholds, overrides, regression rules and baselines, as pure functions over plain data.

Nothing here scores, collects or prints: the pytest items, the assertions and ``lipsync gate`` judge with
the same functions, so a merged report gets exactly the verdicts of the pytest run.
"""
