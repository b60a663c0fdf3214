"""What generated test modules call at run time. Small on purpose: the logic lives in the compiler."""

from __future__ import annotations

import inspect

import pytest


def bind(check_func):
    """Turn the generated stub into a test that runs `check_func` with the check's own signature
    (so its fixtures resolve) and marks (so its parametrize applies), keeping the stub's name and docstring."""

    def decorate(stub):
        def test(*args, **kwargs):
            __tracebackhide__ = True
            return check_func(*args, **kwargs)

        test.__name__ = stub.__name__
        test.__qualname__ = stub.__qualname__
        test.__doc__ = stub.__doc__
        test.__module__ = stub.__module__
        test.__signature__ = inspect.signature(check_func)
        test.pytestmark = list(getattr(check_func, "pytestmark", [])) + list(getattr(stub, "pytestmark", []))
        test.specgen_check = check_func
        return test

    return decorate


def _fixture_marker(obj):
    try:
        from _pytest.fixtures import getfixturemarker
    except ImportError:  # pragma: no cover - older/newer pytest layouts
        return getattr(obj, "_pytestfixturefunction", None)
    return getfixturemarker(obj)


def fixtures(*modules) -> dict:
    """Every pytest fixture defined in (or imported into) the check modules, by attribute name."""
    found: dict = {}
    origin: dict = {}
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("__") or _fixture_marker(obj) is None:
                continue
            if name in found and found[name] is not obj:
                raise ImportError(
                    f"specgen: fixture {name!r} is defined in both {origin[name]} and {module.__name__}, whose "
                    "checks share one generated module; rename one, or define it once and import it in both")
            found[name], origin[name] = obj, module.__name__
    return found


def missing(scenario_id: str, stub: str) -> None:
    pytest.fail(
        f"scenario {scenario_id} has no check. Add this to a check module "
        f"(or run `specgen stub {scenario_id} --write`):\n\n{stub}",
        pytrace=False,
    )


def manual(scenario_id: str, procedure: str) -> None:
    pytest.skip(f"manual check for {scenario_id}: follow {procedure} and record evidence; "
                "the report counts fresh evidence, not this test")
