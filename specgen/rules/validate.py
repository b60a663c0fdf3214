"""Validation items and reports: ``openspec validate <id> | --all | --changes | --specs [--json]``
(OpenSpec CLI 1.13.2): which items exist, one item's verdict, the bulk report in the CLI's order
and JSON shape (plus ``line`` on each issue; see docs/validation.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from specgen.errors import ERROR, Issue, SpecgenError
from specgen.model import Project
from specgen.reader.files import Files
from specgen.reader.tree import LINKS_ANY, active_change_ids, discover_spec_files
from specgen.rules.collate import collation_key
from specgen.rules.validate_change import nested_change_message, validate_change_dir
from specgen.rules.validate_spec import is_valid, issue, issue_json, rel, validate_spec_file


def change_ids(root: Path, files: Files | None = None) -> list[str]:
    return active_change_ids(root, LINKS_ANY, files)


def spec_ids(root: Path, files: Files | None = None) -> list[str]:
    return [i for i, _ in discover_spec_files(root / "openspec" / "specs", LINKS_ANY, files)]


@dataclass
class ItemResult:
    id: str
    type: str  # "change" | "spec"
    valid: bool
    issues: list[Issue]
    duration_ms: int

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "type": self.type,
            "valid": self.valid,
            "issues": [issue_json(i) for i in self.issues],
            "durationMs": self.duration_ms,
        }


def validate_item(
    root: Path, item_type: str, item_id: str, strict: bool = False, files: Files | None = None
) -> ItemResult:
    start = time.perf_counter()
    files = files or Files()
    if item_type == "change":
        nested = nested_change_message(root / "openspec" / "changes", item_id, root, files)
        if nested:
            issues = [issue(ERROR, "file", nested, None, f"openspec/changes/{item_id}")]
            return ItemResult(item_id, "change", False, issues, int((time.perf_counter() - start) * 1000))
        issues = validate_change_dir(root / "openspec" / "changes" / item_id, root, files=files)
    else:
        path = root / "openspec" / "specs" / Path(*item_id.split("/")) / "spec.md"
        issues = validate_spec_file(path, item_id.split("/")[0], rel(path, root), files)
    return ItemResult(item_id, item_type, is_valid(issues, strict), issues, int((time.perf_counter() - start) * 1000))


def validate(project, item: str | None = None, strict: bool = False, *, item_type: str | None = None) -> list[Issue]:
    """Issues for one item (change or spec id) or, with item None/"all", for every change and spec."""
    root = Path(project.root if isinstance(project, Project) else project)
    if item in (None, "all", "--all"):
        out: list[Issue] = []
        for r in validate_all(root, strict=strict)["results"]:
            out.extend(r.issues)
        return out
    kind = item_type or ("change" if item in change_ids(root) else "spec" if item in spec_ids(root) else None)
    if kind is None:
        raise SpecgenError(f"Unknown item '{item}'.")
    return validate_item(root, kind, item, strict).issues


def summarize(results: list[ItemResult], changes: bool, specs: bool) -> dict:
    def by(t):
        sel = [r for r in results if r.type == t]
        passed = sum(1 for r in sel if r.valid)
        return {"items": len(sel), "passed": passed, "failed": len(sel) - passed}

    passed = sum(1 for r in results if r.valid)
    by_type = {}
    if changes:
        by_type["change"] = by("change")
    if specs:
        by_type["spec"] = by("spec")
    return {"totals": {"items": len(results), "passed": passed, "failed": len(results) - passed}, "byType": by_type}


def validate_all(root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False) -> dict:
    """The bulk report: {"results": [ItemResult...] sorted as the CLI sorts them, "summary": {...}}."""
    files = Files()  # the whole tree's files, each read once for every rule below
    results = []
    if changes:
        for cid in change_ids(root, files):
            results.append(validate_item(root, "change", cid, strict, files))
    if specs:
        for sid in spec_ids(root, files):
            results.append(validate_item(root, "spec", sid, strict, files))
    results.sort(key=lambda r: collation_key(r.id))
    return {"results": results, "summary": summarize(results, changes, specs)}


def root_output(root: Path) -> dict:
    return {"path": str(Path(os.path.realpath(root))), "source": "nearest"}


def report_json(root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False) -> dict:
    """What `openspec validate --all|--changes|--specs --json [--strict]` prints, plus `line` on issues."""
    report = validate_all(root, changes=changes, specs=specs, strict=strict)
    return {
        "items": [r.to_json() for r in report["results"]],
        "summary": report["summary"],
        "version": "1.0",
        "root": root_output(root),
    }
