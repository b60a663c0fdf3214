"""report.json data -> report.md (a CI step summary) and report.html (one self-contained page)."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt

from specgen.report.verdicts import VERDICTS, spec_link, summary_line

ICON = {"verified": "✅", "manual": "🖐️", "skipped": "⏭️", "baselined": "📌", "missing": "⬜", "stale": "⌛", "suspect": "⚠️",
        "failing": "❌"}


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(data: dict, out_dir: Path, root: Path) -> str:
    s = data["summary"]
    lines = [f"## {summary_line(data, 'report.html').split('; report:')[0]}", ""]
    lines += ["| verdict | requirements | scenarios |", "|---|---:|---:|"]
    for v in VERDICTS:
        lines.append(f"| {ICON[v]} {v} | {s['verdicts'][v]} | {s['scenario_verdicts'][v]} |")
    if not data["manual_counted"]:
        lines += ["", "_Manual evidence is not counted (`--no-manual`)._"]
    failed = [r for r in data["requirements"] if not r["verified"]]
    if failed:
        lines += ["", f"### Not verified ({len(failed)})", "", "| requirement | verdict | why |", "|---|---|---|"]
        for r in failed:
            link = spec_link(data, r["path"], r["line"], out_dir, root)
            lines.append(f"| [{_md_cell(r['capability'])} / {_md_cell(r['name'])}]({link}) | "
                         f"{ICON[r['verdict']]} {r['verdict']} | {_md_cell(r['reason'])[:400]} |")
    if data.get("issues"):
        lines += ["", f"### Static issues ({len(data['issues'])})", ""]
        for i in data["issues"]:
            loc = f"`{i['path']}:{i['line']}` " if i.get("line") else (f"`{i['path']}` " if i.get("path") else "")
            lines.append(f"- {loc}{_md_cell(i['message'])} ({i['code']})")
    caps: dict[str, list] = {}
    for r in data["requirements"]:
        caps.setdefault(r["capability"], []).append(r)
    lines += ["", "### Capabilities", "", "| capability | requirements verified | scenarios verified |",
              "|---|---:|---:|"]
    for cap, reqs in caps.items():
        sc = [x for r in reqs for x in r["scenarios"]]
        lines.append(f"| {cap} | {sum(r['verified'] for r in reqs)}/{len(reqs)} | "
                     f"{sum(x['verified'] for x in sc)}/{len(sc)} |")
    if data["changes"]:
        lines += ["", "### Active changes (not gated)", "",
                  "| change | requirements verified | scenarios verified | without a check |", "|---|---:|---:|---:|"]
        for c in data["changes"]:
            cs = c["summary"]
            lines.append(f"| {c['id']} | {cs['requirements_verified']}/{cs['requirements_total']} | "
                         f"{cs['scenarios_verified']}/{cs['scenarios_total']} | "
                         f"{sum(1 for r in c['requirements'] for x in r['scenarios'] if not x['checks'])} |")
    lines += ["", "Full matrix: `report.html`; data: `report.json`; test log: `junit.xml`.", ""]
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("specgen.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["md"] = lambda text: jinja2.utils.markupsafe.Markup(_md().render(text or ""))
    return env


def html(data: dict, out_dir: Path, root: Path) -> str:
    sections = [{"title": "openspec/specs", "key": "specs", "gated": True, "summary": data["summary"],
                 "requirements": data["requirements"]}]
    sections += [{"title": f"change {c['id']}", "key": c["id"], "gated": False, "summary": c["summary"],
                  "requirements": c["requirements"]} for c in data["changes"]]
    for sec in sections:
        for r in sec["requirements"]:
            r["link"] = spec_link(data, r["path"], r["line"], out_dir, root)
            for s in r["scenarios"]:
                s["link"] = spec_link(data, s["path"], s["line"], out_dir, root)
                for c in s["checks"]:
                    c["link"] = spec_link(data, c["path"], c["line"], out_dir, root)
    return _env().get_template("report.html.j2").render(
        data=data, sections=sections, verdicts=VERDICTS, icon=ICON,
        headline=summary_line(data, "report.html").split("; report:")[0],
    )
