"""What a proof result measured: a hash of the product's code, and per scenario a hash of its spec text and
its checks' source. A result whose stamp differs from the tree's is *stale*: the report says so and the
gate never counts it as current."""

from __future__ import annotations

import hashlib
from pathlib import Path


def _files(sources: list[Path]) -> list[Path]:
    files: set[Path] = set()
    for src in sources:
        files.update([src] if src.is_file() else src.rglob("*.py"))
    return sorted(p for p in files if "__pycache__" not in p.parts)


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"<unreadable>"


def code_hash(sources: list[Path]) -> str:
    """The product's Python files under `sources` (paths and bytes), hashed in a fixed order."""
    digest = hashlib.sha256()
    for path in _files(sources):
        digest.update(path.as_posix().encode() + b"\0")
        digest.update(_bytes(path))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def file_hashes(sources: list[Path], root: Path) -> dict[str, str]:
    """Each Python file under `sources` (relative to `root`, as reach names them) -> a hash of its bytes: what
    an incremental reach run compares to decide which checks to rerun (:mod:`specgen.proof.incremental`)."""
    base = root.resolve()
    out = {}
    for path in _files(sources):
        try:
            rel = path.resolve().relative_to(base).as_posix()
        except ValueError:
            rel = path.as_posix()
        out[rel] = hashlib.sha256(_bytes(path)).hexdigest()[:16]
    return out


def file_hash(path: Path) -> str:
    return hashlib.sha256(_bytes(path)).hexdigest()[:16]


def scenario_hashes(comp) -> dict[str, str]:
    """scenario id -> hash of its spec fingerprint and its checks' source fingerprints."""
    out = {}
    for ref in comp.specs.scenarios():
        parts = [ref.fingerprint] + sorted(
            f"{d.check_key}={d.source_fingerprint}" for d in comp.decls_for(comp.specs.name, ref.id)
        )
        out[ref.id] = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return out


def stamp(comp, sources: list[Path]) -> dict:
    return {"code": code_hash(sources), "scenarios": scenario_hashes(comp)}


def outline_hash(path: Path) -> str:
    """A hash of what importing the file runs: the module with every function body left out (its statements,
    class bodies, decorators, default values and signatures stay; line numbers do not count). A change that
    leaves it equal is confined to function bodies, so only code that calls those functions can see it. A file
    that does not parse hashes as its bytes (every change counts)."""
    import ast

    data = _bytes(path)
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return "bytes:" + hashlib.sha256(data).hexdigest()[:16]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]
