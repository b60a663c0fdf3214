"""validate, apply. PLACEHOLDER: the validator work fills these in."""

from __future__ import annotations


def register(sub) -> None:
    pass
