"""One gate run, shared by the pytest plugin and ``lipsync gate``: its videos, where their scores come from
(scoring with a cache, or a finished report), their verdicts, and what the run writes at the end."""
