"""report.json data -> report.md (a CI step summary) and report.html (one self-contained page)."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import jinja2
from markdown_it import MarkdownIt

from specgen.report.verdicts import VERDICTS, spec_link, summary_line

ICON = {
    "verified": "✅",
    "manual": "🖐️",
    "skipped": "⏭️",
    "baselined": "📌",
    "missing": "⬜",
    "stale": "⌛",
    "suspect": "⚠️",
    "failing": "❌",
}


def _md_cell(text: str) -> str:
    """Tree text (names, reasons, failure messages) on one table-cell line of the step summary: raw HTML
    is escaped (GitHub renders the HTML a Markdown file holds), '|' cannot end the cell."""
    text = " ".join(str(text).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_link(url: str) -> str:
    """A link target that cannot end the Markdown link early or carry a space."""
    return "".join(c if c.isprintable() and c not in " ()<>" else quote(c, safe="") for c in url)


def markdown(data: dict, out_dir: Path, root: Path) -> str:
    s = data["summary"]
    lines = [f"## {summary_line(data, 'report.html').split('; report:')[0]}", ""]
    lines += ["| verdict | requirements | scenarios |", "|---|---:|---:|"]
    for v in VERDICTS:
        lines.append(f"| {ICON[v]} {v} | {s['verdicts'][v]} | {s['scenario_verdicts'][v]} |")
    if not data["manual_counted"]:
        lines += ["", "_Manual evidence is not counted (`--no-manual`)._"]
    # worst first, so that a capped step summary (specgen.report.github) keeps what matters most
    failed = sorted((r for r in data["requirements"] if not r["verified"]), key=lambda r: VERDICTS.index(r["verdict"]))
    if failed:
        lines += ["", f"### Not verified ({len(failed)})", "", "| requirement | verdict | why |", "|---|---|---|"]
        for r in failed:
            link = _md_link(spec_link(data, r["path"], r["line"], out_dir, root))
            lines.append(
                f"| [{_md_cell(r['capability'])} / {_md_cell(r['name'])}]({link}) | "
                f"{ICON[r['verdict']]} {r['verdict']} | {_md_cell(r['reason'])[:400]} |"
            )
    if data.get("issues"):
        lines += ["", f"### Static issues ({len(data['issues'])})", ""]
        for i in data["issues"]:
            loc = (
                f"{_md_cell(i['path'])}:{i['line']} "
                if i.get("line")
                else (f"{_md_cell(i['path'])} " if i.get("path") else "")
            )
            lines.append(f"- {loc}{_md_cell(i['message'])} ({i['code']})")
    lines += _proof_markdown(data, out_dir, root)
    caps: dict[str, list] = {}
    for r in data["requirements"]:
        caps.setdefault(r["capability"], []).append(r)
    lines += [
        "",
        "### Capabilities",
        "",
        "| capability | requirements verified | scenarios verified |",
        "|---|---:|---:|",
    ]
    for cap, reqs in caps.items():
        sc = [x for r in reqs for x in r["scenarios"]]
        lines.append(
            f"| {_md_cell(cap)} | {sum(r['verified'] for r in reqs)}/{len(reqs)} | "
            f"{sum(x['verified'] for x in sc)}/{len(sc)} |"
        )
    if data["changes"]:
        lines += [
            "",
            "### Active changes (not gated)",
            "",
            "| change | requirements verified | scenarios verified | without a check |",
            "|---|---:|---:|---:|",
        ]
        for c in data["changes"]:
            cs = c["summary"]
            lines.append(
                f"| {_md_cell(c['id'])} | {cs['requirements_verified']}/{cs['requirements_total']} | "
                f"{cs['scenarios_verified']}/{cs['scenarios_total']} | "
                f"{sum(1 for r in c['requirements'] for x in r['scenarios'] if not x['checks'])} |"
            )
    lines += ["", "Full matrix: `report.html`; data: `report.json`; test log: `junit.xml`.", ""]
    return "\n".join(lines)


def _md_code(text: str) -> str:
    # Source text inside a table cell: no Markdown or HTML can come out of it.
    return _md_cell(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def _proof_markdown(data: dict, out_dir: Path, root: Path) -> list[str]:
    """Reach and strength (`specgen proof`): a count per reach status and a row per requirement with a
    finding or a survivor, its survivors one click away (a <details> block)."""
    proof = data.get("proof")
    if not proof:
        return []
    gate = "gating" if proof["gate"] else "shown, not gating"
    counts = ", ".join(f"{n} {k}" for k, n in proof["reach"].items()) or "nothing measured"
    lines = ["", f"### Proof ({gate})", "", f"Scenario reach: {counts}."]
    cut = proof.get("mutation") or {}
    if cut.get("not_run"):
        missed = cut.get("requirements_not_reached") or []
        lines.append(
            f"Mutation run cut by `--budget {cut.get('budget')}`: {cut['not_run']} sampled mutant(s) not run"
            + (
                f"; {len(missed)} requirement(s) got none: {', '.join(_md_code(k) for k in missed[:10])}"
                if missed
                else ""
            )
            + (" ..." if len(missed) > 10 else "")
            + "."
        )
    if not proof["measured"]:
        lines.append("No proof results: run `specgen proof` (and `--mutants N` for strength).")
    elif not proof["current"]:
        lines.append("The proof results are **stale** (the code changed since): rerun `specgen proof`.")
    rows = [r for r in data["requirements"] if r.get("proof_findings") or (r.get("strength") or {}).get("survived")]
    if not proof["measured"]:
        rows = []  # nothing measured: one line says so, not a row per requirement
    if rows:
        lines += ["", "| requirement | reach | strength | findings |", "|---|---|---|---|"]
        for r in rows:
            link = spec_link(data, r["path"], r["line"], out_dir, root)
            reach = ", ".join(sorted({s["reach"]["status"] for s in r["scenarios"] if "reach" in s}))
            st = r["strength"]
            score = (
                f"{st['killed'] + st['timeout']}/{st['total']}"
                if st["total"]
                else ("no mutants" if st["status"] == "current" else st["status"])
            )
            survivors = "".join(
                f"<br>{_md_code(m['where'])} {_md_code(m['operator'])}: <code>{_md_code(m['mutation'])}</code>"
                for m in st.get("survivors", [])[:20]
            )
            cell = (
                f"<details><summary>{score}, {st['survived']} survived</summary>{survivors}</details>"
                if survivors
                else score
            )
            lines.append(
                f"| [{_md_cell(r['capability'])} / {_md_cell(r['name'])}]({link}) | {reach} | {cell} | "
                f"{_md_cell('; '.join(r.get('proof_findings', [])))[:400]} |"
            )
    return lines


@functools.lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("specgen.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = lambda text: jinja2.utils.markupsafe.Markup(_md().render(text or ""))
    return env


_ANCHOR = re.compile(r"^\s*<!--\s*specgen-id:.*?-->\s*$\n?", re.MULTILINE)


def _text(text: str) -> str:
    """Spec text for the page: the anchor comment is an id, not prose (the id is shown beside it)."""
    return _ANCHOR.sub("", text or "")


def _check_row(c: dict) -> list:
    return [c["check"], c["path"], c["line"], c["verdict"], c["reason"], c["kind"] == "manual"]


def _scenario_row(s: dict) -> list:
    # The commonest reason, "no check bound: `specgen stub <id>`", is rebuilt by the page (0): 13,000 of them
    # would be a third of the file.
    reason = 0 if s["reason"] == f"no check bound: `specgen stub {s['id']}`" else s["reason"]
    return [
        s["id"],
        s["name"],
        s["path"],
        s["line"],
        s["verdict"],
        s["verified"],
        reason,
        _text(s["text"]),
        [_check_row(c) for c in s["checks"]],
        _reach_row(s.get("reach")),
    ]


def _reach_row(p: dict | None) -> list | None:
    return None if p is None else [p["status"], p.get("off_path", []), p.get("exception") or ""]


def _strength_row(r: dict) -> list | None:
    p = r.get("strength")
    if p is None:
        return None
    survivors = [[m["where"], m["operator"], m["mutation"]] for m in p.get("survivors", [])]
    weak = bool(p["survived"]) or any(f.startswith("strength") for f in r.get("proof_findings", []))
    return [p["killed"], p["survived"], p["timeout"], p["total"], p["score"], p["status"], survivors, weak]


def _requirement_row(r: dict) -> list:
    # A requirement's reason repeats its scenarios' (shown on their rows): the first 240 characters say enough.
    reason = r["reason"] if len(r["reason"]) <= 240 else r["reason"][:240] + "…"
    return [
        r["capability"],
        r["name"],
        r["id"],
        r["path"],
        r["line"],
        r["verdict"],
        r["verified"],
        reason,
        _text(r["text"]),
        r.get("operation") or "",
        [_scenario_row(s) for s in r["scenarios"]],
        _strength_row(r),
        r.get("proof_findings", []),
    ]


def capability_rows(requirements: list[dict]) -> list[dict]:
    """Per capability: requirement and scenario counts, and scenario counts by verdict (the bar)."""
    caps: dict[str, dict] = {}
    for r in requirements:
        c = caps.setdefault(
            r["capability"],
            {
                "name": r["capability"],
                "reqs": 0,
                "reqs_ok": 0,
                "scns": 0,
                "scns_ok": 0,
                "by": dict.fromkeys(VERDICTS, 0),
            },
        )
        c["reqs"] += 1
        c["reqs_ok"] += r["verified"]
        for s in r["scenarios"]:
            c["scns"] += 1
            c["scns_ok"] += s["verified"]
            c["by"][s["verdict"]] += 1
        if r["verdict"] == "baselined":  # a requirement-only verdict: its scenarios show as baselined in the bar
            for s in r["scenarios"]:
                if not s["verified"]:
                    c["by"][s["verdict"]] -= 1
                    c["by"]["baselined"] += 1
    return list(caps.values())


def _json_for_script(payload) -> str:
    # Inside <script>: no "</" may close it, no "<!--" may open a comment.
    return (
        json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        .replace("</", "<\\/")
        .replace("<!--", "<\\u0021--")
    )


def html(data: dict, out_dir: Path, root: Path) -> str:
    """One self-contained page: the summary and the per-capability table rendered here; the rows of
    requirements, scenarios and checks travel once, as JSON, and the page renders those that match
    the filters (so 13,000 scenarios open in a moment and filtering stays fast)."""
    sections = [
        {
            "title": "openspec/specs",
            "key": "specs",
            "gated": True,
            "summary": data["summary"],
            "requirements": data["requirements"],
        }
    ]
    sections += [
        {
            "title": f"change {c['id']}",
            "key": c["id"],
            "gated": False,
            "summary": c["summary"],
            "requirements": c["requirements"],
        }
        for c in data["changes"]
    ]
    if data.get("source_url"):
        base = data["source_url"].rstrip("/")
    else:
        base = os.path.relpath(root, out_dir).replace(os.sep, "/")
    rows = {
        "base": base,
        "sections": [
            {
                "key": s["key"],
                "title": s["title"],
                "gated": s["gated"],
                "reqs": [_requirement_row(r) for r in s["requirements"]],
            }
            for s in sections
        ],
    }
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            data=data,
            sections=sections,
            verdicts=VERDICTS,
            icon=ICON,
            caps=capability_rows(data["requirements"]),
            rows_json=jinja2.utils.markupsafe.Markup(_json_for_script(rows)),
            headline=summary_line(data, "report.html").split("; report:")[0],
        )
    )
