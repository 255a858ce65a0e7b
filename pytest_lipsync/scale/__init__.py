"""Scoring past one process: device placement, the worker pool, CI shards and merging their reports."""
