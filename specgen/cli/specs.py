"""`specgen list` and `specgen show`: the OpenSpec CLI's `list` / `show` over specgen's reader.

With --json the output is the official CLI's JSON (same keys, values and order) plus `name`
and `line` on requirements and scenarios. Failures print the CLI's JSON failure payload on
stdout in --json mode, and always one line `path[:line]: error: message` on stderr; exit 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from specgen.cli import roots
from specgen.cli.views import (
    change_json,
    dumps,
    iso_ms,
    last_modified_ms,
    root_output,
    spec_json,
    status_json,
    task_status,
)
from specgen.errors import SpecgenError
from specgen.reader.changes import parse_change, task_progress
from specgen.reader.specs import parse_spec
from specgen.reader.tree import (
    CHANGE_MARKERS,
    LINKS_INSIDE,
    active_change_ids,
    describe_nested,
    discover_spec_files,
    has_any_file_under,
    nested_changes,
    spec_ids,
)
from specgen.rules.collate import collation_key

# ---------------------------------------------------------------------------- helpers


class _Fail(SpecgenError):
    """A failure with the CLI's JSON status entry and specgen's one-line message."""

    def __init__(self, status: dict, path, line: int | None = None, message: str | None = None):
        super().__init__(message or status["message"], path, line)
        self.status = status


def _emit_failure(args, fail: _Fail, payload: dict | None = None) -> int:
    if args.json:
        print(dumps({**(payload or {}), "status": [fail.status]}))
    print(f"specgen: {SpecgenError(fail.message, fail.path, fail.line)}", file=sys.stderr)
    return 2


def _no_root_status() -> dict:
    return status_json(
        "No OpenSpec root found from the current directory.",
        "no_openspec_root",
        target="openspec.root",
        fix="Run openspec init to create a root here.",
    )


def _found(args) -> list:
    """The project's OpenSpec roots (specgen.cli.roots); no project at all fails as the CLI does."""
    try:
        return roots.found(args)
    except SpecgenError as exc:
        raise _Fail(_no_root_status(), exc.path, exc.line, exc.message) from None


def _resolve_root(config) -> Path:
    """The folder holding one root's OpenSpec folder (see specgen.config)."""
    status = _no_root_status()
    try:
        parent = config.require_openspec()
    except SpecgenError as exc:
        raise _Fail(status, exc.path, exc.line, exc.message) from None
    if not ((config.openspec_dir / "specs").is_dir() or (config.openspec_dir / "changes").is_dir()):
        # The CLI reads only an openspec/ that holds specs/ or changes/.
        raise _Fail(
            status,
            config.openspec_dir,
            message="no OpenSpec root: the folder holds neither specs/ nor changes/; run `openspec init`",
        )
    return parent


def _from_specgen_error(exc, code: str) -> _Fail:
    where = f"{exc.path}: " if exc.path is not None else ""
    return _Fail(status_json(f"{where}{exc.message}", code), exc.path, exc.line, exc.message)


# ---------------------------------------------------------------------------- list


def cmd_list(args) -> int:
    """With several OpenSpec roots: each root's list under its `== root` header; --json: one
    document, `{"roots": [{"root", "specs", ...that root's list}]}`."""
    payload = {"specs": [], "root": None} if args.specs else {"changes": [], "root": None}
    try:
        found = _found(args)
    except _Fail as fail:
        return _emit_failure(args, fail, payload)
    if not (found[0].name and args.json):
        return roots.each(args, lambda r: _list_one(args, r.config, payload), found)
    import contextlib
    import io
    import json

    docs, rc = [], 0
    for r in found:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = max(rc, _list_one(args, r.config, payload))
        docs.append({"name": r.name, "specs": r.config.specs, **json.loads(buf.getvalue())})
    print(dumps({"roots": docs}))
    return rc


def _list_one(args, config, payload: dict) -> int:
    try:
        root = _resolve_root(config)
        if args.specs:
            return _list_specs(args, root)
        return _list_changes(args, root)
    except _Fail as fail:
        return _emit_failure(args, fail, payload)
    except SpecgenError as exc:
        return _emit_failure(args, _from_specgen_error(exc, "list_error"), payload)


def _list_specs(args, root: Path) -> int:
    specs_dir = root / "openspec" / "specs"
    rows, unreadable = [], []
    if specs_dir.exists():
        for sid, path in discover_spec_files(specs_dir):
            try:
                spec = parse_spec(path, sid)
            except SpecgenError as exc:  # named below; the rest is still listed
                unreadable.append(exc)
                continue
            rows.append({"id": sid, "requirementCount": len(spec.requirements)})
        rows.sort(key=lambda r: collation_key(r["id"]))
    if args.json:
        status = [_from_specgen_error(exc, "list_error").status for exc in unreadable]
        print(dumps({"specs": rows, "root": root_output(root), **({"status": status} if status else {})}))
    elif not rows:
        print("No specs found.")
    else:
        width = max(len(r["id"]) for r in rows)
        print("Specs:")
        for r in rows:
            print(f"  {r['id'].ljust(width)}     requirements {r['requirementCount']}")
    for exc in unreadable:
        print(f"specgen: {exc}", file=sys.stderr)
    return 2 if unreadable else 0


def _looks_like_change(folder: Path) -> bool:
    if any((folder / m).is_file() for m in CHANGE_MARKERS):
        return True
    try:
        return has_any_file_under(folder / "specs")
    except OSError:
        return False


def _nested_changes(changes_dir: Path, name: str) -> list[str]:
    return nested_changes(changes_dir, name, _looks_like_change, LINKS_INSIDE)


def _list_changes(args, root: Path) -> int:
    changes_dir = root / "openspec" / "changes"
    try:
        names = sorted(
            (e.name for e in os.scandir(changes_dir) if e.is_dir(follow_symlinks=False) and e.name != "archive"),
            key=lambda n: n.encode("utf-8", "surrogateescape"),
        )
    except FileNotFoundError:
        names = []
    rows = []
    warnings = []
    for name in names:
        folder = changes_dir / name
        total, done = task_progress(folder, root)
        nested = _nested_changes(changes_dir, name)
        row = {
            "name": name,
            "completedTasks": done,
            "totalTasks": total,
            "lastModified": last_modified_ms(folder),
            "status": task_status(total, done),
        }
        if nested:
            row["nested"] = nested
            warnings.append(
                {
                    "code": "nested_change_directory",
                    "name": name,
                    "nested": nested,
                    "message": describe_nested(name, nested),
                }
            )
        rows.append(row)
    if args.sort == "recent":
        rows.sort(key=lambda r: -r["lastModified"])
    else:
        rows.sort(key=lambda r: collation_key(r["name"]))
    if args.json:
        for r in rows:
            r["lastModified"] = iso_ms(r["lastModified"])
        out = {"changes": rows}
        if warnings:
            out["warnings"] = warnings
        out["root"] = root_output(root)
        print(dumps(out))
        return 0
    if not rows:
        print("No active changes found.")
        return 0
    width = max(len(r["name"]) for r in rows)
    print("Changes:")
    for r in rows:
        if r.get("nested"):
            status = "not a change"
        elif r["totalTasks"] == 0:
            status = "No tasks"
        elif r["completedTasks"] == r["totalTasks"]:
            status = "\u2713 Complete"
        else:
            status = f"{r['completedTasks']}/{r['totalTasks']} tasks"
        print(f"  {r['name'].ljust(width)}     {status.ljust(12)}  {iso_ms(r['lastModified'])}")
    for w in warnings:
        print(f"\nWarning: {w['message']}")
    return 0


# ---------------------------------------------------------------------------- show


def _levenshtein(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _utf16(s: str) -> tuple[int, ...]:
    # The CLI measures and compares ids in UTF-16 code units.
    b = s.encode("utf-16-le", "surrogatepass")
    return tuple(b[i] | (b[i + 1] << 8) for i in range(0, len(b), 2))


def _holds(r, item: str) -> bool:
    """Whether root `r` has a spec or an active change called `item`."""
    try:
        root = r.config.require_openspec()
    except SpecgenError:
        return False
    return item in spec_ids(root) or item in active_change_ids(root)


def cmd_show(args) -> int:
    """With several OpenSpec roots the item is looked up as specgen.cli.roots says."""
    try:
        r, args.id = roots.one(args, args.id, _holds, "spec or change", _found(args))
        root = _resolve_root(r.config)
        return _show(args, root, r.name)
    except _Fail as fail:
        return _emit_failure(args, fail)
    except SpecgenError as exc:
        return _emit_failure(args, _from_specgen_error(exc, "show_error"))


def _show(args, root: Path, ns: str = "") -> int:
    item = args.id
    kind = args.type
    if kind is None:
        changes = active_change_ids(root)
        specs = spec_ids(root)
        is_change, is_spec = item in changes, item in specs
        if not is_change and not is_spec:
            cands = changes + specs
            # Stable sort by edit distance, at most five (the CLI's suggestion rule).
            u = _utf16(item)
            best = sorted(cands, key=lambda c: _levenshtein(u, _utf16(c)))[:5]
            msg = f"Unknown item '{item}'. Did you mean: {', '.join(best)}?" if best else f"Unknown item '{item}'."
            raise _Fail(status_json(msg, "unknown_item"), root / "openspec")
        if is_change and is_spec:
            raise _Fail(
                status_json(
                    f"Ambiguous item '{item}' matches both a change and a spec.",
                    "ambiguous_item",
                    fix="Pass --type change|spec.",
                ),
                root / "openspec",
                message=f"Ambiguous item '{item}' matches both a change and a spec; pass --type change|spec",
            )
        kind = "change" if is_change else "spec"
    if kind == "spec":
        return _show_spec(args, root, item, ns)
    return _show_change(args, root, item)


def _show_spec(args, root: Path, spec_id: str, ns: str = "") -> int:
    specs_dir = root / "openspec" / "specs"
    path = Path(os.path.normpath(os.path.join(specs_dir, spec_id, "spec.md")))  # as Node's path.join
    rel = os.path.relpath(path, specs_dir)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise _Fail(status_json(f"Path is outside the allowed directory: {path}", "show_error"), path)
    if not os.path.exists(path):
        raise _Fail(status_json(f"Spec '{spec_id}' not found at {path}", "show_error"), path)
    spec = parse_spec(path, spec_id)
    if spec.error:
        raise _Fail(status_json(spec.error, "show_error"), path)
    if args.json:
        print(dumps(_with_ids(spec_json(spec, root), root, spec_id, ns)))
        return 0
    _print_spec(spec)
    return 0


def _with_ids(payload: dict, root: Path, spec_id: str, ns: str = "") -> dict:
    """specgen's ids (`id`) on each requirement and scenario, after the CLI's keys; as `specgen check` names them."""
    from specgen.compile.identity import specs_view
    from specgen.reader.load import load_tree

    try:
        view = specs_view(load_tree(root), ns)
    except SpecgenError as exc:  # an id collision elsewhere: the JSON stays the CLI's, and says why
        print(f"specgen show: ids not shown: {exc}", file=sys.stderr)
        return payload
    reqs = {r.name: r for r in view.requirements if r.capability == (f"{ns}:{spec_id}" if ns else spec_id)}
    for req in payload["requirements"]:
        ref = reqs.get(req["name"])
        if ref is not None:
            req["id"] = ref.key
            for scn, sref in zip(req["scenarios"], ref.scenarios, strict=False):
                scn["id"] = sref.id
    return payload


def _show_change(args, root: Path, change_id: str) -> int:
    changes_dir = root / "openspec" / "changes"
    folder = Path(os.path.join(changes_dir, change_id))
    proposal = os.path.normpath(folder / "proposal.md")
    if os.path.dirname(os.path.normpath(folder)) != os.path.normpath(changes_dir):
        raise _Fail(status_json(f'Change "{change_id}" not found at {proposal}', "show_error"), folder)
    if not os.path.exists(proposal):
        if folder.is_dir():
            msg = (
                f'Change "{change_id}" has no proposal.md yet. Run "openspec status --change {change_id}" '
                "to see which artifact comes next."
            )
            nested = _nested_changes(changes_dir, change_id)
            if nested:
                msg = describe_nested(change_id, nested)
            raise _Fail(status_json(msg, "show_error"), folder)
        raise _Fail(status_json(f'Change "{change_id}" not found at {proposal}', "show_error"), folder)
    change = parse_change(folder, False, root)
    if change.error:
        raise _Fail(status_json(change.error, "show_error"), Path(proposal))
    if args.json:
        print(dumps(change_json(change, root)))
        return 0
    _print_change(change)
    return 0


# ---------------------------------------------------------------------------- human output


def _indent(text: str, pad: str) -> str:
    return "\n".join(pad + ln if ln else ln for ln in text.split("\n"))


def _print_requirement(req, pad: str = "  ") -> None:
    print(f"{pad}Requirement: {req.name}  (line {req.line})")
    print(_indent(req.text, pad + "  "))
    for s in req.scenarios:
        anchor = f"  [id: {s.anchor}]" if s.anchor else ""
        print(f"{pad}  Scenario: {s.name}  (line {s.line}){anchor}")
        print(_indent(s.raw_text, pad + "    "))


def _print_spec(spec) -> None:
    print(f"{spec.id}: {spec.heading or spec.title}  ({spec.path})")
    print()
    print("Purpose:")
    print(_indent(spec.overview, "  "))
    print()
    print(f"Requirements ({len(spec.requirements)}):")
    for req in spec.requirements:
        _print_requirement(req)
        print()


def _print_change(change) -> None:
    print(f"{change.id}: {change.title}  ({change.path})")
    if change.tasks_total:
        print(f"Tasks: {change.tasks_done}/{change.tasks_total}")
    print()
    print("Why:")
    print(_indent(change.why, "  "))
    print()
    print("What Changes:")
    print(_indent(change.what_changes, "  "))
    print()
    print(f"Deltas ({len(change.deltas)}):")
    for d in change.deltas:
        if d.operation == "RENAMED":
            print(f"  {d.spec}: RENAMED {d.rename_from!r} -> {d.name!r}  (line {d.line})")
        elif d.requirement is None:
            print(f"  {d.spec}: {d.operation} (from What Changes) {d.description}")
        else:
            print(f"  {d.spec}: {d.operation}")
            _print_requirement(d.requirement, "    ")
