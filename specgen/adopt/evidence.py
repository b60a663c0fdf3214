"""``specgen evidence``: the manual evidence record, written for the person who ran the procedure.

The record (specgen/report/manual.py reads it; tests/manual/README.md shows it) gets the scenario's
current fingerprint, the commit (``git rev-parse HEAD``), who (``git config user.name`` and
``user.email``), when (UTC), a machine summary, and ``dirty: true`` when the work tree had
uncommitted changes. :func:`flag` says why a record cannot be trusted as it stands: made on a dirty
tree, or for a commit that is not an ancestor of HEAD (another branch, a rewritten history).
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from specgen import fsio
from specgen.errors import SpecgenError


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:  # no git at all: nothing can be told
        return subprocess.CompletedProcess(["git", *args], 127, "", str(exc))


def _git_out(root: Path, *args: str) -> str:
    proc = git(root, *args)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine_summary() -> str:
    return (
        f"{platform.node()}: {platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s)"
    )


def record(
    root: Path, scenario: str, fingerprint: str, result: str, notes: str, manual_dir: Path, now: datetime | None = None
) -> tuple[Path, dict]:
    commit = _git_out(root, "rev-parse", "HEAD")
    if not commit:
        raise SpecgenError("not a git work tree with a commit: evidence names the commit it was made against", root)
    name, email = _git_out(root, "config", "user.name"), _git_out(root, "config", "user.email")
    if not name and not email:
        raise SpecgenError("who made it? set `git config user.name` (and user.email) first", root)
    dirty = bool(_git_out(root, "status", "--porcelain", "--untracked-files=no"))
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    data = {
        "scenario": scenario,
        "fingerprint": fingerprint,
        "result": result,
        "who": f"{name} <{email}>" if name and email else (name or email),
        "when": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "machine": machine_summary(),
        "dirty": dirty,
        "notes": notes,
    }
    path = manual_dir / "evidence" / f"{now.strftime('%Y-%m-%dT%H%M%SZ')}-{scenario.replace('/', '--')}.yaml"
    if path.exists():
        raise SpecgenError("a record of that scenario at that second exists; wait a second and rerun", path)
    fsio.write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path, data


def flag(root: Path, commit: str, dirty: bool) -> str | None:
    """Why a record is not to be trusted as it stands, or None."""
    if dirty:
        return "made on a work tree with uncommitted changes"
    # Exit 1: both commits are known and the record's is not in HEAD's history. Any other failure (no git
    # repository, a commit a shallow CI clone does not have) cannot tell, so it flags nothing.
    proc = git(root, "merge-base", "--is-ancestor", commit, "HEAD")
    if proc.returncode == 1:
        return f"commit {commit[:12]} is not an ancestor of HEAD"
    return None
