"""Report files and the gate: model + lock + test outcomes + manual evidence -> report.json
(machines), report.md (a CI step summary), report.html (one self-contained page) in the report
folder, and the exit code of ``specgen report [--gate]`` (see docs/compiler.md). junit.xml,
written there by pytest, is left as it is. Imports Jinja2 (through the renderer): only
``specgen report`` loads this module.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from specgen import fsio
from specgen.adopt import baseline
from specgen.compile.compiler import Compilation
from specgen.compile.generator import rel_path, stub_code
from specgen.errors import SpecgenError
from specgen.proof.attach import attach as proof_attach
from specgen.report import github, render
from specgen.report.freshness import results_issues
from specgen.report.gate import static_issues
from specgen.report.verdicts import VERDICTS, build, summarize, summary_line
from specgen.results import RESULTS_NAME, load_results

GATE_LIMIT = 20  # requirements shown in the terminal, each with its stubs; --verbose for all


def run(
    comp: Compilation,
    gate: bool,
    no_manual: bool,
    results: str | None,
    out: str | None,
    source_url: str,
    fmt: str = "text",
    verbose: bool = False,
) -> int:
    if source_url and not re.match(r"https?://[^\s]+$", source_url, re.IGNORECASE):
        raise SpecgenError(f"--source-url {source_url!r}: only an http:// or https:// URL is accepted")
    out_dir = Path(out).resolve() if out else comp.config.report_dir
    res_path = Path(results) if results else out_dir / RESULTS_NAME
    results_data = load_results(res_path)
    data = build(comp, results_data, no_manual, source_url)
    stale = results_issues(comp, res_path, results_data)  # said loudly, and --gate fails on it
    data["issues"] = report_issues(comp, res_path, results_data, stale)
    listed = baseline.read(comp.config.baseline_path)
    ratchets = baseline.apply(data, listed, comp.config.gated)
    data["summary"] = summarize(data["requirements"])
    data["ratchet"] = [r.message(comp.config.baseline) for r in ratchets]
    proof_failures = proof_attach(data, comp)  # reach and strength, when the project uses `specgen proof`
    inside = None if out else comp.root  # the configured folder stays in the project; --out goes where asked
    fsio.write_text(
        out_dir / "report.json", json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n", inside
    )
    fsio.write_text(out_dir / "report.md", render.markdown(data, out_dir, comp.root), inside)
    fsio.write_text(out_dir / "report.html", render.html(data, out_dir, comp.root), inside)
    where = rel_path(out_dir / "report.html", comp.root)
    failed = [
        r for r in data["requirements"] if not r["verified"] and r["gated"] and r["verdict"] != baseline.BASELINED
    ]
    summary_file = github.append_step_summary(
        (out_dir / "report.md").read_text(encoding="utf-8"), rel_path(out_dir / "report.md", comp.root)
    )
    if gate and fmt == "github":
        print("\n".join(_annotations(failed, data, comp.config.baseline, proof_failures)))
    elif gate:  # the findings on stderr; the summary line once, on stdout, ends the run
        shown = failed if verbose else sorted(failed, key=lambda r: VERDICTS.index(r["verdict"]))[:GATE_LIMIT]
        for r in shown:
            print(
                f"{r['path']}:{r['line']}: not verified: {r['capability']} / {r['name']} [{r['verdict']}]: "
                f"{r['reason']}",
                file=sys.stderr,
            )
            for s in r["scenarios"]:
                # the code to add, not only where to get it; not for the scenarios the baseline lists
                if not s["checks"] and not listed.covers(r["id"], s["id"]):
                    stub = stub_code(comp.specs.by_id[s["id"]])
                    print("    " + stub.rstrip("\n").replace("\n", "\n    "), file=sys.stderr)
        for i in data["issues"]:
            loc = f"{i['path']}:{i['line']}: " if i["line"] else (f"{i['path']}: " if i["path"] else "")
            level = "warning" if i["code"] in ("missing-results", "stale-results") else "error"
            print(f"{loc}{level}: {i['message']} [{i['code']}]", file=sys.stderr)
        for message in data["ratchet"]:
            print(f"{comp.config.baseline}: error: {message}", file=sys.stderr)
        for r, why in proof_failures:
            print(f"{r['path']}:{r['line']}: not proven: {r['capability']} / {r['name']}: {why}", file=sys.stderr)
        if len(shown) < len(failed):
            print(
                f"... {len(failed) - len(shown)} more requirement(s) not verified, worst first above: "
                "`specgen report --gate --verbose` for all, or report.md",
                file=sys.stderr,
            )
    for i in stale:
        if not gate:  # under --gate every issue is printed above
            print(f"{rel_path(i.path, comp.root)}: warning: {i.message} [{i.code}]", file=sys.stderr)
    if proof_failures:
        print(f"specgen: {len(proof_failures)} requirement(s) not proven ([tool.specgen.proof] gate)", file=sys.stderr)
    print(summary_line(data, where) + (f"; summary appended to {summary_file}" if summary_file else ""))
    return 1 if gate and (failed or data["issues"] or data["ratchet"] or proof_failures) else 0


def report_issues(comp: Compilation, res_path: Path, results_data: dict, stale: list | None = None) -> list[dict]:
    """The static problems the gate fails on (not the gaps and suspect links, which verdicts carry),
    after the results file's own (missing or stale results), as report.json lists them."""
    stale = results_issues(comp, res_path, results_data) if stale is None else stale
    issues = stale + [
        i
        for i in static_issues(comp)
        if i.level == "error" and i.code not in ("unbound-scenario", "uncovered-requirement", "suspect-binding")
    ]
    return [
        {"code": i.code, "message": i.message, "path": rel_path(i.path, comp.root) if i.path else None, "line": i.line}
        for i in issues
    ]


def _annotations(failed: list[dict], data: dict, baseline_name: str, proof_failures=()) -> list[str]:
    """The gate's findings as GitHub annotations: ratchets and static issues, then requirements by verdict."""
    items = [github.Annotation("error", baseline_name, None, "specgen ratchet", m) for m in data["ratchet"]]
    items += [
        github.Annotation("error", i["path"], i["line"], f"specgen {i['code']}", i["message"]) for i in data["issues"]
    ]
    for r in sorted(failed, key=lambda r: (VERDICTS.index(r["verdict"]), r["path"], r["line"])):
        items.append(
            github.Annotation(
                "error",
                r["path"],
                r["line"],
                f"specgen {r['verdict']}",
                f"not verified: {r['capability']} / {r['name']}: {r['reason']}",
            )
        )
    for r, why in proof_failures:
        items.append(
            github.Annotation(
                "error",
                r["path"],
                r["line"],
                "specgen not-proven",
                f"not proven: {r['capability']} / {r['name']}: {why}",
            )
        )
    return github.annotations(items, "finding(s)")


def total(sections: list, out_dir: Path, root: Path) -> str:
    """With several OpenSpec roots: `<out>/report.{json,md,html}` holding a section per root (its
    summary and a link to its own report) and the total; returns the total's summary line."""
    keys = ("requirements_total", "requirements_verified", "scenarios_total", "scenarios_verified")
    rows = [
        {
            "root": r.name,
            "specs": r.config.specs,
            "report": f"{r.name}/report.html",
            **{k: data["summary"][k] for k in keys},
        }
        for r, data in sections
    ]
    sums = {k: sum(row[k] for row in rows) for k in keys}
    data = {"version": 1, "roots": rows, "total": sums}
    fsio.write_text(out_dir / "report.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
    md = [
        "# Spec traceability: every root",
        "",
        "| root | folder | requirements verified | scenarios verified |",
        "|---|---|---|---|",
    ]
    html_rows = []
    for row in rows:
        md.append(
            f"| [{row['root']}]({row['report']}) | {row['specs']} | {row['requirements_verified']}/"
            f"{row['requirements_total']} | {row['scenarios_verified']}/{row['scenarios_total']} |"
        )
        html_rows.append(
            f'<tr><td><a href="{_esc(row["report"])}">{_esc(row["root"])}</a></td>'
            f"<td>{_esc(row['specs'])}</td><td>{row['requirements_verified']}/{row['requirements_total']}"
            f"</td><td>{row['scenarios_verified']}/{row['scenarios_total']}</td></tr>"
        )
    totals = (
        f"{sums['requirements_verified']}/{sums['requirements_total']} requirements verified, "
        f"{sums['scenarios_verified']}/{sums['scenarios_total']} scenarios"
    )
    md += [
        f"| **total** | | {sums['requirements_verified']}/{sums['requirements_total']} | "
        f"{sums['scenarios_verified']}/{sums['scenarios_total']} |",
        "",
    ]
    fsio.write_text(out_dir / "report.md", "\n".join(md))
    fsio.write_text(
        out_dir / "report.html",
        '<!doctype html>\n<meta charset="utf-8"><title>Spec traceability: every root</title>\n'
        "<h1>Spec traceability: every root</h1>\n<table>\n<tr><th>root</th><th>folder</th>"
        "<th>requirements verified</th><th>scenarios verified</th></tr>\n"
        + "\n".join(html_rows)
        + f'\n<tr><th>total</th><td></td><td colspan="2">{_esc(totals)}</td></tr>\n</table>\n',
    )
    return f"specgen: total over {len(rows)} roots: {totals}; report: {rel_path(out_dir / 'report.html', root)}"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
