"""Write audit for multi-process checks: put this folder first on PYTHONPATH.

With ``COORDEXP_WRITE_AUDIT_ROOT`` (a run's output folder) and ``COORDEXP_WRITE_AUDIT_OUT`` (where
reports go) set, every torchrun rank (``RANK`` set) records the paths under the root that it
opens for writing, creates (``os.mkdir``), copies to or renames to, through Python's audit
events, and writes them to ``<out>/rank<RANK>.json`` at exit. Writes made by native code
without a Python-level open (safetensors' Rust writer) are not seen, but every checkpoint save
also creates its folder and writes JSON/README files from Python, which are.
"""

import os

_ROOT = os.environ.get("COORDEXP_WRITE_AUDIT_ROOT")
_OUT = os.environ.get("COORDEXP_WRITE_AUDIT_OUT")
_RANK = os.environ.get("RANK")

if _ROOT and _OUT and _RANK is not None:
    import atexit
    import json
    import sys

    _root = os.path.realpath(_ROOT)
    _seen: list = []
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _inside(path) -> str | None:
        try:
            p = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        return os.path.relpath(p, _root) if p.startswith(_root + os.sep) else None

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            rel = _inside(path) if writing else None
        elif event == "os.mkdir":
            rel = _inside(args[0])
        elif event in ("shutil.copyfile", "os.rename", "os.replace"):
            rel = _inside(args[1])
        else:
            return
        if rel is not None:
            _seen.append([event, rel])

    def _report():
        os.makedirs(_OUT, exist_ok=True)
        with open(os.path.join(_OUT, f"rank{_RANK}.json"), "w") as f:
            json.dump(sorted({tuple(x) for x in _seen}), f)

    sys.addaudithook(_hook)
    atexit.register(_report)
