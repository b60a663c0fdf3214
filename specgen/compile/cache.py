"""A compile cache: reading 1,000 specs and 1,000 check modules again when none changed is the
whole cost of a no-op `specgen generate`, so keep the result keyed by the files' stat.

The key hashes (path, size, mtime_ns) of every file the result depends on: openspec/, the check
modules, pyproject.toml and specgen's own sources (a new specgen or parser invalidates it). It
lives under the report folder (build/, never committed). SPECGEN_NO_CACHE=1 turns it off; any
problem reading or writing it just means no cache.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

_SPECGEN_DIR = Path(__file__).resolve().parent.parent  # the specgen package
FILE = "compile-cache.pickle"


def _walk(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def key(paths: list[Path], folders: list[Path]) -> str:
    h = hashlib.sha256(sys.version.encode())
    files = [str(p) for p in paths]
    for folder in [*folders, _SPECGEN_DIR]:
        files.extend(_walk(folder))
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            h.update(f"{f}\0missing\n".encode())
            continue
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    return h.hexdigest()


def load(folder: Path, k: str):
    if os.environ.get("SPECGEN_NO_CACHE"):
        return None
    try:
        with (folder / FILE).open("rb") as fh:
            stored_key, value = pickle.load(fh)
    except Exception:  # absent, truncated or from another version: recompute
        return None
    return value if stored_key == k else None


def store(folder: Path, k: str, value) -> None:
    if os.environ.get("SPECGEN_NO_CACHE"):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{FILE}.{os.getpid()}"
        with tmp.open("wb") as fh:
            pickle.dump((k, value), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, folder / FILE)
    except Exception:  # a read-only checkout still works, only slower
        pass


STAMP = "generate-stamp.json"


def outputs_key(k: str, lock_path: Path, output: Path) -> str:
    """`k` plus the stat of the lock and of every file under the output folder."""
    h = hashlib.sha256(k.encode())
    for f in [str(lock_path), *(_walk(output) if output.is_dir() else [])]:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    return h.hexdigest()


def read_stamp(folder: Path) -> dict:
    if os.environ.get("SPECGEN_NO_CACHE"):
        return {}
    try:
        import json

        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except Exception:
        return {}


def write_stamp(folder: Path, key_: str, message: str) -> None:
    if os.environ.get("SPECGEN_NO_CACHE"):
        return
    try:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        (folder / STAMP).write_text(json.dumps({"key": key_, "message": message}), encoding="utf-8")
    except Exception:
        pass
