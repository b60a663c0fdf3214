"""What a proof result measured: a hash of the product's code, and per scenario a hash of its spec text and
its checks' source. A result whose stamp differs from the tree's is *stale*: the report says so and the
gate never counts it as current."""

from __future__ import annotations

import hashlib
from pathlib import Path


def code_hash(sources: list[Path]) -> str:
    """The product's Python files under `sources` (paths and bytes), hashed in a fixed order."""
    digest = hashlib.sha256()
    files: set[Path] = set()
    for src in sources:
        files.update([src] if src.is_file() else src.rglob("*.py"))
    for path in sorted(files):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


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
