"""How every coordexp config file is opened: the file must exist, its ``extends`` chain is merged, and problems go
to one ``Ctx`` that maps each key path to its file and line.

Shared by the training loader (``config.loader.load_config``) and the inference/evaluation loader
(``infer.config.load_pipeline_config``); what each does with the merged tree is its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .issues import ConfigError, Issue, Loc
from .typed import Ctx
from .yaml_source import load_tree


def open_config(path: str | os.PathLike, *, legacy: Callable[[tuple], str | None] | None = None) -> tuple[Any, Ctx]:
    """(the merged tree, a context collecting issues); ``ConfigError`` when the file is missing or unreadable."""
    path = Path(path)
    issues: list[Issue] = []
    if not path.is_file():
        raise ConfigError([Issue(Loc(str(path), 1), "", "config file not found")])
    tree = load_tree(path, issues)
    if tree is None:
        raise ConfigError(issues)
    ctx = Ctx(tree.marks, Loc(str(tree.leaf), 1), errors=issues)
    if legacy is not None:
        ctx.legacy = legacy
    return tree, ctx


def reject_unknown_top_level(raw: dict, allowed: Collection[str], ctx: Ctx) -> None:
    """One issue per top-level key the file's loader does not read."""
    for key in raw:
        if key not in allowed:
            ctx.unknown((key,), allowed)
