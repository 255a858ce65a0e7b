"""``python -m pytest_lipsync.bench``: the same as ``lipsync bench``."""

from __future__ import annotations

import sys

from pytest_lipsync.cli.bench import main

sys.exit(main())
