"""A compile cache: reading 1,000 specs and 1,000 check modules again when none changed is the
whole cost of a no-op `specgen generate`, so keep the result keyed by the files' stat.

The key hashes (path, size, mtime_ns) of every file the result depends on: openspec/, the check
modules, pyproject.toml and specgen's own sources (a new specgen or parser invalidates it). It
lives under the report folder (build/, never committed). SPECGEN_NO_CACHE=1 turns it off; any
problem reading or writing it just means no cache.

The report folder may be written by others (a CI cache, a pull request): the cache is plain JSON,
never a pickle. Its first line is the key, compared before the rest is parsed; the rest is a tree
of lists, strings and numbers in which a tagged list names one of the model's dataclasses (a fixed
list, `_CLASSES`), built through its constructor. A file that is absent, truncated, foreign or of
another shape is "no cache", never an error and never a load of arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import operator
import os
import sys
import types
import typing
from pathlib import Path

_SPECGEN_DIR = Path(__file__).resolve().parent.parent  # the specgen package
FILE = "compile-cache.json"
FORMAT = "specgen-compile-cache/1"


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


def load(folder: Path, k: str, shape=None):
    """The value stored under key `k`, or None. `shape`: the type the value must have (a type hint such as
    ``tuple[Project, list[View]]``); a value of another shape is no cache, like a foreign file."""
    if os.environ.get("SPECGEN_NO_CACHE"):
        return None
    try:
        with (folder / FILE).open("rb") as fh:
            if fh.readline() != f"{FORMAT} {k}\n".encode():
                return None  # another key, format or file: not read any further
            value = decode(json.loads(fh.read()))
    except Exception:  # absent, truncated, foreign or of another shape: recompute
        return None
    return value if shape is None or _conforms(value, shape) else None


def store(folder: Path, k: str, value, root: Path | None = None) -> None:
    """Store `value` under key `k` (atomically; `root`: only inside that folder, never through a link out)."""
    if os.environ.get("SPECGEN_NO_CACHE"):
        return
    from specgen import fsio

    try:
        data = json.dumps(encode(value), ensure_ascii=False, separators=(",", ":"), check_circular=False)
        fsio.write_bytes(folder / FILE, f"{FORMAT} {k}\n".encode() + data.encode("utf-8", "surrogatepass"), root)
    except Exception:  # a read-only checkout still works, only slower
        pass


# ------------------------------------------------------------------ plain-data codec
# str, int, float, bool and None are themselves; every other value is a list whose first item is a tag:
# ["t", items...] tuple, ["l", items...] list, ["d", k, v, k, v...] dict, ["p", "path"] Path,
# ["c", "Class", field values...] one of _CLASSES, ["r", n] the n-th class value built so far (the model
# shares requirement and scenario objects between the project and its views: each is written once).


@functools.cache
def _classes() -> dict[str, type]:
    from specgen import model
    from specgen.compile import identity, registry
    from specgen.errors import Issue

    found = [model.Scenario, model.Requirement, model.Spec, model.Delta, model.Change, model.Project]
    found += [identity.ScenarioRef, identity.RequirementRef, identity.View, registry.Decl, registry.CheckModule, Issue]
    return {c.__name__: c for c in found}


def encode(value):
    getters = {
        c: (c.__name__, operator.attrgetter(*(f.name for f in dataclasses.fields(c)))) for c in _classes().values()
    }
    seen: dict[int, int] = {}
    scalar = (str, int, bool, float, type(None))

    def enc(v):
        t = type(v)
        if t in scalar:
            return v
        g = getters.get(t)
        if g is not None:
            n = seen.get(id(v))
            if n is not None:
                return ["r", n]
            values = g[1](v)
            out = ["c", g[0], *[x if type(x) in scalar else enc(x) for x in values]]
            seen[id(v)] = len(seen)
            return out
        if t is tuple:
            return ["t", *[x if type(x) in scalar else enc(x) for x in v]]
        if t is list:
            return ["l", *[x if type(x) in scalar else enc(x) for x in v]]
        if t is dict:
            return ["d", *(x for kv in v.items() for x in (enc(kv[0]), enc(kv[1])))]
        if isinstance(v, Path):
            return ["p", str(v)]
        raise TypeError(f"the compile cache cannot hold a {t.__name__}")

    return enc(value)


def _conforms(value, hint) -> bool:
    """`value` has the type `hint` (the dataclass field hints of the model: classes, unions, tuples, dicts)."""
    return _checker(hint)(value)


@functools.cache
def _checker(hint):
    """A predicate for `hint`, built once per hint (decoding checks every field of every object)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return lambda v: v is None
    if origin in (types.UnionType, typing.Union):
        arms = [_checker(a) for a in args]
        return lambda v: any(arm(v) for arm in arms)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _checker(args[0])
        return lambda v: type(v) is tuple and all(map(item, v))
    if origin is tuple:
        items = [_checker(a) for a in args]
        return lambda v: type(v) is tuple and len(v) == len(items) and all(c(x) for c, x in zip(items, v, strict=True))
    if origin is list:
        item = _checker(args[0])
        return lambda v: type(v) is list and all(map(item, v))
    if origin is dict:
        key, val = _checker(args[0]), _checker(args[1])
        return lambda v: type(v) is dict and all(key(k) and val(x) for k, x in v.items())
    if hint is Path:
        return lambda v: isinstance(v, Path)
    if isinstance(hint, type):
        return lambda v: type(v) is hint  # exact: a bool is no int here, a subclass no model class
    return lambda v: True


@functools.cache
def _hints() -> dict[str, tuple]:
    return {
        name: tuple(_checker(typing.get_type_hints(c).get(f.name)) for f in dataclasses.fields(c))
        for name, c in _classes().items()
    }


def decode(data):
    classes = _classes()
    hints = _hints()
    names = {n: tuple(f.name for f in dataclasses.fields(c)) for n, c in classes.items()}
    built: list = []

    def dec(v):
        if type(v) is not list:
            return v
        tag = v[0]
        if tag == "c":
            name = v[1]
            args = [x if type(x) is not list else dec(x) for x in v[2:]]
            checks = hints[name]
            if len(args) != len(checks) or not all(c(a) for c, a in zip(checks, args, strict=True)):
                raise ValueError(f"a {name} of another shape")
            # The fields as checked, set as a frozen dataclass's __init__ would (without its per-field cost).
            obj = object.__new__(classes[name])
            obj.__dict__.update(zip(names[name], args, strict=True))
            built.append(obj)
            return obj
        if tag == "r":
            return built[v[1]]
        if tag == "t":
            return tuple([x if type(x) is not list else dec(x) for x in v[1:]])
        if tag == "p":
            return Path(v[1])
        if tag == "l":
            return [x if type(x) is not list else dec(x) for x in v[1:]]
        if tag == "d":
            items = [x if type(x) is not list else dec(x) for x in v[1:]]
            return dict(zip(items[0::2], items[1::2], strict=True))
        raise ValueError(f"unknown tag {tag!r}")

    return dec(data)


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
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except Exception:
        return {}
    ok = isinstance(stamp, dict) and isinstance(stamp.get("key"), str) and isinstance(stamp.get("message"), str)
    return stamp if ok else {}  # another shape: no stamp, the run does the work


def write_stamp(folder: Path, key_: str, message: str, root: Path | None = None) -> None:
    if os.environ.get("SPECGEN_NO_CACHE"):
        return
    from specgen import fsio

    try:
        fsio.write_text(folder / STAMP, json.dumps({"key": key_, "message": message}), root)
    except Exception:
        pass
