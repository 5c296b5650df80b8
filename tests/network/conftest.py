"""Shared helpers for the network tests."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root on sys.path, so `network` and `payswitch` import when pytest is run as
# `.venv/bin/pytest` without the package installed (pyproject has no pytest `pythonpath`).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
