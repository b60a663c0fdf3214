"""list, show. PLACEHOLDER: the parser work fills these in."""

from __future__ import annotations


def register(sub) -> None:
    pass
