"""`specgen validate`: OpenSpec's validation rules, levels and messages.

validate [<id>|--all|--specs|--changes] [--type spec|change] [--strict] [--json] [--root DIR] [--only ROOT]
    With several OpenSpec roots, the bulk forms validate each root (--json: one document, a section
    per root) and an item is looked up as specgen.cli.roots says (`<root>:<id>`, --only, or the one
    root holding it).
    --json prints exactly what `openspec validate ... --json` prints (same fields, values and
    order), plus `line` on each issue whose line is known. Human output: one line per issue,
    `path:line: level: message`, on stdout; the totals on stderr.
    Exit 0 every item valid, 1 some item invalid, 2 usage error or unreadable input.

Only this module is imported for `specgen validate`, which is timed against the Node CLI
(bench/bench_validate.py); `apply` lives in specgen/cli/apply.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from specgen.cli import roots
from specgen.rules import validate as V


def openspec_root(config) -> tuple[Path, str]:
    """The folder holding one root's OpenSpec folder (what the rules take as `root`; see
    specgen.config), and that folder relative to the project root ("" when it is the root), so
    that paths are printed as seen from the project root."""
    root = config.require_openspec()
    prefix = Path(os.path.relpath(root, os.path.realpath(config.root))).as_posix()
    return root, "" if prefix == "." else prefix + "/"


def _holds(r, item: str) -> bool:
    root = r.config.require_openspec()
    return item in V.change_ids(root) or item in V.spec_ids(root)


def _nearest(name: str, candidates: list[str]) -> list[str]:
    import difflib  # only for an unknown item

    return difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)


def _status(code: str, message: str, fix: str | None = None) -> str:
    entry = {"severity": "error", "code": code, "message": message}
    if fix:
        entry["fix"] = fix
    return json.dumps({"status": [entry]}, indent=2, ensure_ascii=False)


def run_validate(args) -> int:
    bulk = args.all or args.changes or args.specs
    if bulk and args.item:
        print("specgen validate: error: an item id cannot be combined with --all/--changes/--specs", file=sys.stderr)
        return 2
    if not bulk and not args.item:
        print(
            "Nothing to validate. Try one of:\n  specgen validate --all\n  specgen validate --changes\n"
            "  specgen validate --specs\n  specgen validate <item-name>",
            file=sys.stderr,
        )
        return 2
    if bulk:
        found = roots.found(args)
        if bulk and found[0].name and args.json:  # several roots: one JSON document, a section per root
            docs = []
            rc = 0
            for r in found:
                buf = _Capture()
                rc = max(rc, _validate(args, r.config, None, buf))
                docs.append({"name": r.name, "specs": r.config.specs, **json.loads(buf.text)})
            sys.stdout.write(json.dumps({"roots": docs}, indent=2, ensure_ascii=False) + "\n")
            return rc
        return roots.each(args, lambda r: _validate(args, r.config, args.item, sys.stdout), found)
    r, item = roots.one(args, args.item, _holds, "change or spec")
    return _validate(args, r.config, item, sys.stdout)


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def _validate(args, config, item: str | None, out) -> int:
    """Validate one root: every item (bulk) or `item`; prints the report to `out`."""
    root, prefix = openspec_root(config)
    bulk = args.all or args.changes or args.specs
    if bulk:
        report = V.validate_all(
            root, changes=args.all or args.changes, specs=args.all or args.specs, strict=args.strict
        )
        results, summary = report["results"], report["summary"]
    else:
        changes, specs = V.change_ids(root), V.spec_ids(root)
        is_change, is_spec = item in changes, item in specs
        kind = args.type or ("change" if is_change else "spec" if is_spec else None)
        if kind is None:
            sugg = _nearest(item, changes + specs)
            msg = f"Unknown item '{item}'. Did you mean: {', '.join(sugg)}?" if sugg else f"Unknown item '{item}'."
            if args.json:
                print(_status("unknown_item", msg), file=out)
            else:
                print(f"specgen validate: error: {msg}", file=sys.stderr)
            return 2
        if not args.type and is_change and is_spec:
            msg = f"Ambiguous item '{item}' matches both a change and a spec."
            if args.json:
                print(_status("ambiguous_item", msg, "Pass --type change|spec."), file=out)
            else:
                print(f"specgen validate: error: {msg} Pass --type change|spec.", file=sys.stderr)
            return 2
        parts = [item] if kind == "change" else item.split("/")
        bad = next((p for p in parts if p in ("", ".", "..") or "\\" in p or (kind == "change" and "/" in p)), None)
        if bad is not None:
            msg = (
                f"{'Change name' if kind == 'change' else 'Spec id'} must not be '{bad}'"
                if bad in (".", "..")
                else f"{'Change name' if kind == 'change' else 'Spec id'} must not contain path separators"
                if bad
                else f"{'Change name' if kind == 'change' else 'Spec id'} must not be empty"
            )
            print(
                _status("invalid_item", msg) if args.json else f"specgen validate: error: {msg}",
                file=out if args.json else sys.stderr,
            )
            return 2
        res = V.validate_item(root, kind, item, args.strict)
        results = [res]
        summary = V.summarize(results, kind == "change", kind == "spec")
    if args.json:
        doc = {
            "items": [r.to_json() for r in results],
            "summary": summary,
            "version": "1.0",
            "root": V.root_output(root),
        }
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        lines = []
        for r in results:
            for issue in r.issues:
                where = issue.path or f"openspec/{'changes' if r.type == 'change' else 'specs'}/{r.id}"
                lines.append(issue.human(prefix + where))
        if lines:
            out.write("\n".join(lines) + "\n")
        t = summary["totals"]
        failed = [f"{r.type}/{r.id}" for r in results if not r.valid]
        tail = f" (invalid: {', '.join(failed)})" if failed else ""
        print(f"Totals: {t['passed']} passed, {t['failed']} failed ({t['items']} items){tail}", file=sys.stderr)
    return 0 if all(r.valid for r in results) else 1
