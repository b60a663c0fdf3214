"""init, baseline, evidence: adopting specgen in an existing project, on the command line.

Exit status: 0 ok; 1 (baseline --check) the baseline is out of date; 2 bad input (SpecgenError).
"""

from __future__ import annotations

import sys
from pathlib import Path

from specgen import config as specgen_config
from specgen import fsio
from specgen.adopt import init as initmod
from specgen.cli import roots
from specgen.errors import SpecgenError

NEXT = "next: `specgen generate`, then `specgen baseline` to adopt gradually (README, step 2)"


def cmd_init(args) -> int:
    root = Path(args.root or ".").resolve()
    if not root.is_dir():
        raise SpecgenError(f"--root {args.root}: no such folder")
    config = specgen_config.load_config(root)
    trees = initmod.SINGLE
    if config.configured or config.openspec_dir.is_dir():
        for r in specgen_config.roots(config):  # the configured tree(s) must exist
            r.config.require_openspec()
    else:  # no [tool.specgen] and no openspec/ here: look for the trees of a monorepo
        found = initmod.find_trees(root)
        if not found:
            config.require_openspec()
        trees = initmod.layout(found)
        print(f"specgen init: found {len(found)} OpenSpec tree(s): {', '.join(found)}; writing `{trees}`")
    edits = initmod.plan(root, config.checks[0], trees)
    initmod.apply(edits)
    for e in edits:
        print(f"specgen init: {e.what}")
    print(
        "specgen init: nothing to do; the project is set up"
        if not edits
        else f"specgen init: {len(edits)} change(s); {NEXT}"
    )
    return 0


def _report_data(config, results: str | None) -> dict:
    """What `specgen report` would build now, issues included (without writing anything)."""
    from specgen.compile.compiler import compile_project
    from specgen.report.verdicts import build
    from specgen.report.write import report_issues
    from specgen.results import RESULTS_NAME, load_results

    comp = compile_project(config)
    path = Path(results) if results else config.report_dir / RESULTS_NAME
    loaded = load_results(path)
    data = build(comp, loaded, False, "")
    data["issues"] = report_issues(comp, path, loaded)
    return data


def cmd_baseline(args) -> int:
    base = specgen_config.resolve(args.root)
    found = specgen_config.roots(base, args.only)
    # With several roots the one results file of the test run feeds every root (as `specgen report`).
    results = args.results or (str(base.report_dir / "results.json") if found[0].name else None)
    return roots.each(args, lambda r: _baseline(r.config, args, results), found)


def _baseline(config, args, results: str | None) -> int:
    from specgen.adopt import baseline

    path, name = config.baseline_path, config.baseline
    data = _report_data(config, results)
    refused = baseline.refused(data)
    if refused:
        for i in refused:
            loc = f"{i['path']}:{i['line']}: " if i["line"] else (f"{i['path']}: " if i["path"] else "")
            print(f"{loc}error: {i['message']} [{i['code']}]", file=sys.stderr)
        print(
            f"specgen baseline: refused: {len(refused)} item(s) above are fixed by the command each names, "
            "not baselined; fix them and rerun",
            file=sys.stderr,
        )
        return 1
    now = baseline.record(data, config.gated)
    if not args.update:
        if path.exists():
            raise SpecgenError(
                "a baseline exists; `specgen baseline --update` shrinks it (the baseline only "
                "shrinks: to start over, delete it and rerun `specgen baseline`)",
                path,
            )
        fsio.write_text(path, baseline.render(now), config.root)
        # The promise printed below is checked, not assumed: the gate, run on this data with the new file.
        ratchets = baseline.apply(data, now, config.gated)
        left = [
            r["id"] for r in data["requirements"] if not r["verified"] and r["gated"] and r["verdict"] != "baselined"
        ]
        if left or data["issues"] or ratchets:
            raise SpecgenError(f"internal: the new baseline does not hold: {left[:5]} {data['issues'][:2]}", path)
        scenarios = sum(len(e.scenarios or ()) for e in now.requirements.values())
        print(
            f"specgen baseline: recorded {len(now.requirements)} unverified requirement(s) ({scenarios} scenario(s)) "
            f"and {len(now.problems)} static problem(s) in {name}; commit it. `specgen report --gate` passes on the "
            "tree as it is, and fails on new gaps (a new scenario included) and on listed items that are fixed"
        )
        return 0
    old = baseline.read(path)
    kept, dropped, new = baseline.update(old, now)
    text = baseline.render(kept)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        fsio.write_text(path, text, config.root)
    for item in dropped:
        print(f"dropped {item} (verified, fixed or gone)")
    print(
        f"specgen baseline --update: {len(kept.requirements)} requirement(s) remain in {name}, "
        f"{len(dropped)} item(s) dropped"
    )
    if new:
        print(
            f"specgen baseline --update: {len(new)} gap(s) or problem(s) are not in the baseline and were not "
            f"added (it only shrinks): {', '.join(new[:10])}{' ...' if len(new) > 10 else ''}",
            file=sys.stderr,
        )
    return 0


def cmd_evidence(args) -> int:
    from specgen.adopt import evidence
    from specgen.compile.compiler import compile_project
    from specgen.compile.review import find_scenario

    comp = compile_project(roots.config_of(args, args.scenario_id))
    view, ref = find_scenario(comp, args.scenario_id)
    if not any(d.manual for d in comp.decls_for(view.name, ref.id)):
        raise SpecgenError(f"{ref.id} has no manual check: evidence is for @check(..., manual=...) procedures")
    path, data = evidence.record(comp.root, ref.id, ref.fingerprint, args.result, args.notes, comp.config.manual_dir)
    print(
        f"specgen evidence: wrote {path.relative_to(comp.root).as_posix()} ({data['result']}, fingerprint "
        f"{data['fingerprint']}, commit {data['commit'][:12]}); commit it"
    )
    why_not = evidence.flag(comp.root, data["commit"], data["dirty"])
    if why_not:
        print(
            f"specgen evidence: warning: this record is flagged ({why_not}); the report will not count it",
            file=sys.stderr,
        )
    return 0
