"""Validation items and reports: ``openspec validate <id> | --all | --changes | --specs [--json]``
(OpenSpec CLI 1.13.2): which items exist, which item a name means (or why none), one item's
verdict, the bulk report in the CLI's order and JSON shape (plus ``line`` on each issue; see
docs/validation.md), and the report's lines for people. ``specgen validate`` only parses its
arguments and prints what :func:`run` returns.
"""

from __future__ import annotations

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


def validate_all(
    root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False, files: Files | None = None
) -> dict:
    """The bulk report: {"results": [ItemResult...] sorted as the CLI sorts them, "summary": {...}}."""
    files = files or Files()  # the whole tree's files, each read once for every rule below
    results = []
    if changes:
        for cid in change_ids(root, files):
            results.append(validate_item(root, "change", cid, strict, files))
    if specs:
        for sid in spec_ids(root, files):
            results.append(validate_item(root, "spec", sid, strict, files))
    results.sort(key=lambda r: collation_key(r.id))
    return {"results": results, "summary": summarize(results, changes, specs)}


def root_output(root: Path, files: Files | None = None) -> dict:
    return {"path": str((files or Files()).realpath(root)), "source": "nearest"}


def report_json(root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False) -> dict:
    """What `openspec validate --all|--changes|--specs --json [--strict]` prints, plus `line` on issues."""
    files = Files()
    report = validate_all(root, changes=changes, specs=specs, strict=strict, files=files)
    return Report(root_output(root, files), report["results"], report["summary"]).to_json()


class Refusal:
    """Why a named item cannot be validated: the CLI's status ``code``, ``message`` and ``fix``."""

    __slots__ = ("code", "message", "fix")

    def __init__(self, code: str, message: str, fix: str | None = None) -> None:
        self.code = code  # unknown_item | ambiguous_item | invalid_item
        self.message = message
        self.fix = fix

    def to_json(self) -> dict:
        entry = {"severity": "error", "code": self.code, "message": self.message}
        if self.fix:
            entry["fix"] = self.fix
        return {"status": [entry]}

    def human(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message


class Report:
    """One root's validation: the item results in the CLI's order and the summary."""

    __slots__ = ("root", "results", "summary")

    def __init__(self, root: dict, results: list[ItemResult], summary: dict) -> None:
        self.root = root  # the JSON `root` (root_output)
        self.results = results
        self.summary = summary

    @property
    def valid(self) -> bool:
        return all(r.valid for r in self.results)

    def to_json(self) -> dict:
        return {
            "items": [r.to_json() for r in self.results],
            "summary": self.summary,
            "version": "1.0",
            "root": self.root,
        }

    def issue_lines(self, prefix: str = "") -> list[str]:
        """`path:line: level: message` per issue; paths from the project root (`prefix`: where
        this root's OpenSpec folder sits in it)."""
        lines = []
        for r in self.results:
            for i in r.issues:
                where = i.path or f"openspec/{'changes' if r.type == 'change' else 'specs'}/{r.id}"
                lines.append(i.human(prefix + where))
        return lines

    def totals_line(self) -> str:
        t = self.summary["totals"]
        failed = [f"{r.type}/{r.id}" for r in self.results if not r.valid]
        tail = f" (invalid: {', '.join(failed)})" if failed else ""
        return f"Totals: {t['passed']} passed, {t['failed']} failed ({t['items']} items){tail}"


def resolve_item(root: Path, item: str, item_type: str | None, files: Files | None = None) -> str | Refusal:
    """The kind ("change" or "spec") `item` names in this root, as the CLI decides it, or why not."""
    files = files or Files()
    changes, specs = change_ids(root, files), spec_ids(root, files)
    is_change, is_spec = item in changes, item in specs
    kind = item_type or ("change" if is_change else "spec" if is_spec else None)
    if kind is None:
        import difflib  # only for an unknown item (start-up of validate)

        sugg = difflib.get_close_matches(item, changes + specs, n=5, cutoff=0.6)
        msg = f"Unknown item '{item}'. Did you mean: {', '.join(sugg)}?" if sugg else f"Unknown item '{item}'."
        return Refusal("unknown_item", msg)
    if not item_type and is_change and is_spec:
        msg = f"Ambiguous item '{item}' matches both a change and a spec."
        return Refusal("ambiguous_item", msg, "Pass --type change|spec.")
    parts = [item] if kind == "change" else item.split("/")
    bad = next((p for p in parts if p in ("", ".", "..") or "\\" in p or (kind == "change" and "/" in p)), None)
    if bad is not None:
        noun = "Change name" if kind == "change" else "Spec id"
        if bad in (".", ".."):
            return Refusal("invalid_item", f"{noun} must not be '{bad}'")
        return Refusal(
            "invalid_item", f"{noun} must not contain path separators" if bad else f"{noun} must not be empty"
        )
    return kind


def run(
    root: Path,
    *,
    item: str | None = None,
    item_type: str | None = None,
    changes: bool = False,
    specs: bool = False,
    strict: bool = False,
) -> Report | Refusal:
    """`openspec validate` on one root: every change and/or spec (bulk), or the one `item` names."""
    files = Files()
    if item is None:
        report = validate_all(root, changes=changes, specs=specs, strict=strict, files=files)
        return Report(root_output(root, files), report["results"], report["summary"])
    kind = resolve_item(root, item, item_type, files)
    if isinstance(kind, Refusal):
        return kind
    results = [validate_item(root, kind, item, strict, files)]
    return Report(root_output(root, files), results, summarize(results, kind == "change", kind == "spec"))
