"""The optional extras in tests: skipped where one is not installed, except in the project's CI.

The browser test (``test_reports_browser.py``) reads the same variable for Playwright and Chromium.

A contributor without Ray or pyarrow still runs the rest of the suite; CI installs the test extra, which
brings both, and sets ``PYTEST_LIPSYNC_REQUIRE_EXTRAS=1`` so that a broken install fails the run rather
than passing it with the Ray and Parquet tests silently skipped.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRE = "PYTEST_LIPSYNC_REQUIRE_EXTRAS"


def import_extra(module: str, extra: str) -> ModuleType:
    """``module``, or the calling test module skipped (failed where ``REQUIRE`` is set) when it is missing."""
    why = f'these tests need {module}: pip install "pytest-lipsync[{extra}]" (the test extra brings it)'
    if os.environ.get(REQUIRE) == "1":
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{REQUIRE}=1 and {why} ({exc})", pytrace=False)
    return pytest.importorskip(module, reason=why)
