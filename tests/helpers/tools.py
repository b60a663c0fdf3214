"""The development tools under ``scripts/tools/`` loaded as modules (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "scripts" / "tools"


def load_tool(name: str) -> ModuleType:
    """``scripts/tools/<name>.py`` as a module, loaded once per process."""
    key = f"_coordexp_tool_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, TOOLS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"scripts/tools/{name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses look their module up while the body runs
    spec.loader.exec_module(module)
    return module
