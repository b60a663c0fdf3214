"""The JSON shapes of `openspec show --json` and `openspec list --json` (OpenSpec CLI 1.13.2),
built from the spec model, plus `name` and `line` on every requirement and scenario.

Key order follows the CLI's; the two extra keys come after the CLI's own keys of the same
object, so dropping them gives the CLI's output key for key.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from specgen.model import RENAMED, Change, Delta, Requirement, Spec

SPEC_METADATA = {"version": "1.0.0", "format": "openspec"}


def dumps(payload) -> str:
    """JSON.stringify(payload, null, 2)."""
    return json.dumps(payload, indent=2, ensure_ascii=False)


def root_output(root: Path) -> dict:
    return {"path": str(root), "source": "nearest"}


def requirement_json(req: Requirement) -> dict:
    return {
        "text": req.text,
        "scenarios": [{"rawText": s.raw_text, "name": s.name, "line": s.line} for s in req.scenarios],
        "name": req.name,
        "line": req.line,
    }


def spec_json(spec: Spec, root: Path | None = None) -> dict:
    out = {
        "id": spec.id,
        "title": spec.title,
        "overview": spec.overview,
        "requirementCount": len(spec.requirements),
        "requirements": [requirement_json(r) for r in spec.requirements],
        "metadata": dict(SPEC_METADATA),
    }
    if root is not None:
        out["root"] = root_output(root)
    return out


def delta_json(delta: Delta) -> dict:
    out = {"spec": delta.spec, "operation": delta.operation, "description": delta.description}
    if delta.from_proposal:
        return out
    if delta.operation == RENAMED:
        out["rename"] = {"from": delta.rename_from, "to": delta.name}
    elif delta.requirement is not None:
        req = requirement_json(delta.requirement)
        out["requirement"] = req
        out["requirements"] = [req]
    return out


def name_from_path(path: Path | str) -> str:
    """The CLI's id for a change: the path part after the last `changes` or `specs` part
    (so a change folder named `specs` reads as `proposal.md`)."""
    parts = str(path).replace(os.sep, "/").split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("specs", "changes") and i < len(parts) - 1:
            return parts[i + 1]
    name = parts[-1]
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def change_json(change: Change, root: Path | None = None) -> dict:
    out = {
        # Only the last three parts matter (`changes/<id>/proposal.md`); an archived change
        # reads as if it were active.
        "id": name_from_path(f"changes/{change.id}/proposal.md"),
        "title": change.title or change.id,
        "deltaCount": len(change.deltas),
        "deltas": [delta_json(d) for d in change.deltas],
    }
    if root is not None:
        out["root"] = root_output(root)
    return out


def status_json(message: str, code: str, **extra) -> dict:
    return {"severity": "error", "code": code, "message": message, **extra}


# ---------------------------------------------------------------------------- list


def last_modified_ms(folder: Path) -> int:
    """The newest mtime (ms) of any file under `folder`, the folder's own when it has none.
    Directories are walked without following symlinks; a link is dated by its target; a
    dangling or looping link is skipped."""
    latest = None
    todo = [folder]
    while todo:
        d = todo.pop()
        with os.scandir(d) as it:
            entries = list(it)
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    todo.append(Path(e.path))
                    continue
                ns = os.stat(e.path).st_mtime_ns
            except (FileNotFoundError, OSError) as exc:
                if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == 40:  # ELOOP
                    continue
                raise
            ms = _ms(ns)
            if latest is None or ms > latest:
                latest = ms
    if latest is None:
        latest = _ms(os.stat(folder).st_mtime_ns)
    return latest


def _ms(ns: int) -> int:
    # Node: mtimeMs = sec * 1e3 + nsec / 1e6 (a double); the Date keeps it rounded.
    sec, nsec = divmod(ns, 1_000_000_000)
    return int(sec * 1e3 + nsec / 1e6 + 0.5)


def iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def task_status(total: int, done: int) -> str:
    return "no-tasks" if total == 0 else "complete" if done == total else "in-progress"
