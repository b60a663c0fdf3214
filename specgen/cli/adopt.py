"""init, baseline, evidence: adopting specgen in an existing project, on the command line.

Exit status: 0 ok; 1 (baseline --check) the baseline is out of date; 2 bad input (SpecgenError).
"""

from __future__ import annotations

import sys
from pathlib import Path

from specgen import fsio, project
from specgen.adopt import init as initmod
from specgen.errors import SpecgenError


def cmd_init(args) -> int:
    root = Path(args.root or ".").resolve()
    if not root.is_dir():
        raise SpecgenError(f"--root {args.root}: no such folder")
    config = project.load_config(root)
    config.require_openspec()
    edits = initmod.plan(root, config.checks[0])
    initmod.apply(edits)
    for e in edits:
        print(f"specgen init: {e.what}")
    print(
        "specgen init: nothing to do; the project is set up"
        if not edits
        else f"specgen init: {len(edits)} change(s); next: `specgen check`, then `specgen baseline` to adopt gradually"
    )
    return 0


def _report_data(config, results: str | None) -> dict:
    from specgen.compile.compiler import compile_project
    from specgen.plugin import RESULTS_NAME
    from specgen.report.verdicts import build, load_results

    comp = compile_project(config)
    return build(comp, load_results(Path(results) if results else config.report_dir / RESULTS_NAME), False, "")


def cmd_baseline(args) -> int:
    from specgen.adopt import baseline

    config = project.resolve(args.root)
    path, name = config.baseline_path, config.baseline
    now = baseline.unverified(_report_data(config, args.results), config.gated)
    if not args.update:
        if path.exists():
            raise SpecgenError(
                "a baseline exists; `specgen baseline --update` shrinks it (the baseline only "
                "shrinks: to start over, delete it and rerun `specgen baseline`)",
                path,
            )
        fsio.write_text(path, baseline.render(now), config.root)
        print(
            f"specgen baseline: recorded {len(now)} unverified requirement(s) in {name}; commit it. The gate now "
            "fails only on new gaps, and on listed ones that are fixed"
        )
        return 0
    old = baseline.read(path)
    kept, dropped, new = baseline.update(old, now)
    text = baseline.render(kept)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        fsio.write_text(path, text, config.root)
    for req in dropped:
        print(f"dropped {req} (verified or gone)")
    print(f"specgen baseline --update: {len(kept)} requirement(s) remain in {name}, {len(dropped)} dropped")
    if new:
        print(
            f"specgen baseline --update: {len(new)} unverified requirement(s) are not in the baseline and were not "
            f"added (it only shrinks): {', '.join(new[:10])}{' ...' if len(new) > 10 else ''}",
            file=sys.stderr,
        )
    return 0


def cmd_evidence(args) -> int:
    from specgen.adopt import evidence
    from specgen.cli.compile import _find_scenario
    from specgen.compile.compiler import compile_project

    comp = compile_project(project.resolve(args.root))
    view, ref = _find_scenario(comp, args.scenario_id)
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
