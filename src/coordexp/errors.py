"""The base of every error coordexp raises on purpose.

Each error class keeps its builtin base as well (``ValueError`` for bad input, ``RuntimeError`` for a state that
cannot go on), so callers that catch those keep working; ``except CoordExpError`` catches coordexp's own errors and
nothing else (a bug's ``TypeError`` or ``KeyError`` still surfaces as a bug).
"""

from __future__ import annotations


class CoordExpError(Exception):
    """An error coordexp raises on purpose; its message names the input and what to do."""
