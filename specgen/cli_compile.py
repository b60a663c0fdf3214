"""generate, check, stub, review, report. PLACEHOLDER: the compiler work fills these in."""

from __future__ import annotations


def register(sub) -> None:
    pass
