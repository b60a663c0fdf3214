"""init, baseline, evidence: adopting specgen in an existing project, on the command line.

Exit status: 0 ok; 1 (baseline --check) the baseline is out of date; 2 bad input (SpecgenError).
"""

from __future__ import annotations

from pathlib import Path

from specgen import project
from specgen.adopt import init as initmod
from specgen.errors import SpecgenError


def cmd_init(args) -> int:
    root = Path(args.root or ".").resolve()
    if not root.is_dir():
        raise SpecgenError(f"--root {args.root}: no such folder")
    config = project.load_config(root)
    config.require_openspec()
    edits = initmod.plan(root, config.checks[0])
    initmod.apply(edits)
    for e in edits:
        print(f"specgen init: {e.what}")
    print("specgen init: nothing to do; the project is set up" if not edits else
          f"specgen init: {len(edits)} change(s); next: `specgen check`, then `specgen baseline` to adopt gradually")
    return 0
