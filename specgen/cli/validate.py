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
        if found[0].name and args.json:  # several roots: one JSON document, a section per root
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
    """Validate one root (every item, or `item`) and print the report to `out`."""
    root, prefix = openspec_root(config)
    bulk = args.all or args.changes or args.specs
    outcome = V.run(
        root,
        item=None if bulk else item,
        item_type=args.type,
        changes=args.all or args.changes,
        specs=args.all or args.specs,
        strict=args.strict,
    )
    if isinstance(outcome, V.Refusal):
        if args.json:
            print(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False), file=out)
        else:
            print(f"specgen validate: error: {outcome.human()}", file=sys.stderr)
        return 2
    if args.json:
        out.write(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        lines = outcome.issue_lines(prefix)
        if lines:
            out.write("\n".join(lines) + "\n")
        print(outcome.totals_line(), file=sys.stderr)
    return 0 if outcome.valid else 1
