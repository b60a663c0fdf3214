"""One row of a rule table: the validation rules are listed, in the order their issues are
reported, as tables of named rows (``validate_spec.SPEC_RULES``, ``validate_change.CHANGE_RULES``
and the tables they run per requirement, per delta file and per block). Adding a rule is adding
a row where its issues belong in that order.

The row and the views the rules read (``SpecView``, ``ChangeView``, ``DeltaFile``) are plain slotted
classes rather than dataclasses: building a dataclass costs `validate`'s start-up about half a
millisecond each, and `validate` is timed against the official CLI (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable


class Rule:
    """A named check: ``check(...)`` returns (or, for a block row, adds) the issues it finds, in
    order. ``validate_only``: skipped by archive's own pre-check, which runs before the merge."""

    __slots__ = ("name", "check", "validate_only")

    def __init__(self, name: str, check: Callable, validate_only: bool = False) -> None:
        self.name = name
        self.check = check
        self.validate_only = validate_only

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"
