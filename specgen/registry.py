"""Registry: ``@check(...)`` binds a check function to a scenario.

PLACEHOLDER API (the compiler work completes discovery and validation):
    @check("capability", "Requirement name", "Scenario name")
    @check("capability/requirement-slug/scenario-slug")
    @check(..., manual="tests/manual/<procedure>.md")   # a GPU- or person-only scenario
The decorator records the binding and returns the function unchanged, so a check is
an ordinary pytest test function (fixtures, parametrize marks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Binding:
    capability: str
    requirement: str | None  # None when bound by id
    scenario: str | None
    target_id: str | None  # set when bound by id
    func: Callable
    manual: str | None = None


_BINDINGS: list[Binding] = []


def check(capability_or_id: str, requirement: str | None = None, scenario: str | None = None, *,
          manual: str | None = None):
    if (requirement is None) != (scenario is None):
        raise TypeError("check() takes either a scenario id, or capability, requirement and scenario names")

    def decorate(func: Callable) -> Callable:
        if requirement is None:
            cap = capability_or_id.split("/", 1)[0]
            _BINDINGS.append(Binding(cap, None, None, capability_or_id, func, manual))
        else:
            _BINDINGS.append(Binding(capability_or_id, requirement, scenario, None, func, manual))
        return func

    return decorate


def bindings() -> tuple[Binding, ...]:
    return tuple(_BINDINGS)
