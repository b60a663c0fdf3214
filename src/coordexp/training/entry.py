"""How a stage recipe's ``main`` reports a run that could not start: a config error, or a known
setup, data, packing or manifest error (plus the recipe's own), is printed as one message on stderr
with exit status 2, never as a traceback (docs/stage1.md, docs/stage2.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def run_reported(prog: str, run: Callable[[Any], Any], config_path, extra_errors: tuple = ()) -> tuple[Any, int]:
    """``(run(config_path), 0)``, or ``(None, 2)`` after printing the error as ``prog: ...``."""
    from coordexp.config import ConfigError
    from coordexp.format.data import DataError
    from coordexp.training.artifacts import ManifestError
    from coordexp.training.packing import PackingError, PackingLeakError
    from coordexp.training.settings import TrainSetupError

    try:
        return run(config_path), 0
    except ConfigError as exc:
        print(f"{prog}: config error:\n{exc}", file=sys.stderr)
    except (TrainSetupError, DataError, PackingError, PackingLeakError, ManifestError, *extra_errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    return None, 2
