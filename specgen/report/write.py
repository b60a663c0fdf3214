"""Report files and the gate: model + lock + test outcomes + manual evidence -> report.json
(machines), report.md (a CI step summary), report.html (one self-contained page) in the report
folder, and the exit code of ``specgen report [--gate]`` (see docs/compiler.md). junit.xml,
written there by pytest, is left as it is. Imports Jinja2 (through the renderer): only
``specgen report`` loads this module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from specgen.compile.compiler import Compilation
from specgen.compile.generator import rel_path, stub_code
from specgen.plugin import RESULTS_NAME
from specgen.report import render
from specgen.report.freshness import results_issues
from specgen.report.gate import static_issues
from specgen.report.verdicts import build, load_results, summary_line


def run(comp: Compilation, gate: bool, no_manual: bool, results: str | None, out: str | None,
        source_url: str) -> int:
    out_dir = Path(out).resolve() if out else comp.config.report_dir
    res_path = Path(results) if results else out_dir / RESULTS_NAME
    results_data = load_results(res_path)
    data = build(comp, results_data, no_manual, source_url)
    stale = results_issues(comp, res_path, results_data)  # said loudly, and --gate fails on it
    issues = stale + [i for i in static_issues(comp) if i.level == "error"
                      and i.code not in ("unbound-scenario", "uncovered-requirement", "suspect-binding")]
    data["issues"] = [{"code": i.code, "message": i.message, "path": rel_path(i.path, comp.root) if i.path else None,
                       "line": i.line} for i in issues]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                                         encoding="utf-8")
    (out_dir / "report.md").write_text(render.markdown(data, out_dir, comp.root), encoding="utf-8")
    (out_dir / "report.html").write_text(render.html(data, out_dir, comp.root), encoding="utf-8")
    where = rel_path(out_dir / "report.html", comp.root)
    failed = [r for r in data["requirements"] if not r["verified"]]
    if gate:
        for r in failed:
            print(f"{r['path']}:{r['line']}: not verified: {r['capability']} / {r['name']} [{r['verdict']}]: "
                  f"{r['reason']}", file=sys.stderr)
            for s in r["scenarios"]:
                if not s["checks"]:  # show the code to add, not only where to get it
                    stub = stub_code(comp.specs.by_id[s["id"]])
                    print("    " + stub.rstrip("\n").replace("\n", "\n    "), file=sys.stderr)
        for i in data["issues"]:
            loc = f"{i['path']}:{i['line']}: " if i["line"] else (f"{i['path']}: " if i["path"] else "")
            level = "warning" if i["code"] in ("missing-results", "stale-results") else "error"
            print(f"{loc}{level}: {i['message']} [{i['code']}]", file=sys.stderr)
    for i in stale:
        if not gate:  # under --gate every issue is printed above
            print(f"{rel_path(i.path, comp.root)}: warning: {i.message} [{i.code}]", file=sys.stderr)
    print(summary_line(data, where))
    return 1 if gate and (failed or data["issues"]) else 0
