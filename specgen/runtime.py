"""What generated test modules call at run time. Small on purpose: the logic lives in the compiler.

Per-item degradation (docs/compiler.md): a check module that fails to import, or a scenario the
compiler could not compile (an id collision), fails only the tests that use it, each saying why;
the rest of the generated module collects and runs.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

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
        test.pytestmark = (
            _module_marks(check_func)
            + list(getattr(check_func, "pytestmark", []))
            + list(getattr(stub, "pytestmark", []))
        )
        test.specgen_check = check_func
        return test

    return decorate


def _module_marks(check_func) -> list:
    """The check module's own `pytestmark` (one mark or a list): pytest applies it to the tests the
    module defines, so it must reach the generated tests that run its checks too."""
    marks = getattr(sys.modules.get(getattr(check_func, "__module__", ""), None), "pytestmark", [])
    return list(marks) if isinstance(marks, (list, tuple)) else [marks]


class BrokenModule:
    """Stands for a check module that failed to import: each check taken from it fails with the error."""

    def __init__(self, name: str, error: str):
        self.specgen_module, self.specgen_error = name, error

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        name, error = self.specgen_module, self.specgen_error

        def broken():
            pytest.fail(f"check module {name} failed to import, so {attr} cannot run: {error}", pytrace=False)

        broken.__name__ = broken.__qualname__ = attr
        return broken


def load(name: str, generated_file: str):
    """Import check module `name` for a generated test module. When pytest runs without the project
    root on sys.path (no `pythonpath` setting), the root found above `generated_file` is added, so a
    plain `pytest tests/generated` imports the checks. Any other failure becomes a BrokenModule."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        root, top = _project_root(generated_file), name.split(".")[0]
        if exc.name is None or not name.startswith(exc.name) or root is None or str(root) in sys.path:
            return BrokenModule(name, f"{type(exc).__name__}: {exc}")
        if not (root / top).exists() and not (root / f"{top}.py").exists():
            return BrokenModule(name, f"{type(exc).__name__}: {exc}")
        sys.path.insert(0, str(root))
        _forget_shadowing(top, root)
        return load(name, generated_file)
    except Exception as exc:  # any error raised while importing the check module
        return BrokenModule(name, f"{type(exc).__name__}: {exc}")


def _forget_shadowing(top: str, root: Path) -> None:
    """Drop an already imported package `top` that lives outside the project (some distributions
    install a top-level `tests` package into site-packages), so that the project's own is imported."""
    module = sys.modules.get(top)
    if module is None:
        return
    where = [Path(p) for p in getattr(module, "__path__", [])] or [Path(getattr(module, "__file__", "") or ".")]
    if any(p.resolve().is_relative_to(root.resolve()) for p in where):
        return
    for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
        del sys.modules[key]
    importlib.invalidate_caches()


def _project_root(generated_file: str) -> Path | None:
    try:
        from specgen.config import find_root

        return find_root(Path(generated_file).parent)
    except Exception:  # no project above: nothing to add
        return None


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
        if isinstance(module, BrokenModule):
            continue
        for name, obj in vars(module).items():
            if name.startswith("__") or _fixture_marker(obj) is None:
                continue
            if name in found and found[name] is not obj:
                raise ImportError(
                    f"specgen: fixture {name!r} is defined in both {origin[name]} and {module.__name__}, whose "
                    "checks share one generated module; rename one, or define it once and import it in both"
                )
            found[name], origin[name] = obj, module.__name__
    return found


# How the compiler's note about a broken check module starts (specgen.compile.compiler.BROKEN_MODULE).
_BROKEN_MODULE = "the check module "


def missing(scenario_id: str, stub: str, why: str = "") -> None:
    if why.startswith(_BROKEN_MODULE):  # the check exists, in a module that does not parse: name that
        pytest.fail(f"scenario {scenario_id} is not checked: {why}", pytrace=False)
    pytest.fail(
        f"scenario {scenario_id} has no check{': ' + why if why else ''}. Add this to a check module "
        f"(or run `specgen stub {scenario_id} --write`):\n\n{stub}",
        pytrace=False,
    )


def blocked(scenario_id: str, why: str) -> None:
    pytest.fail(f"scenario {scenario_id} cannot be compiled: {why}", pytrace=False)


def manual(scenario_id: str, procedure: str) -> None:
    pytest.skip(
        f"manual check for {scenario_id}: follow {procedure} and record evidence; "
        "the report counts fresh evidence, not this test"
    )
