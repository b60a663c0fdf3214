"""The strength pass of ``specgen proof --mutants N``: per requirement, its sites, its sample, its mutants.

Reads the reach just measured (the on-path lines of each scenario) and the proof run's results (which
generated test runs which binding); drives :mod:`specgen.proof.strength`. Deterministic for one seed:
requirements in spec order, sites sorted, the sample seeded by the requirement id.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from specgen.proof import strength as st


def requirements(comp, data: dict, args, work: Path, results: dict, maps, settings: dict, echo) -> dict:
    root = comp.config.root
    scratch = work / "mutants"
    if scratch.is_dir():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    plan = []
    for req in comp.specs.requirements:
        lines: dict[str, set[int]] = {}
        nodeids: set[str] = set()
        for ref in req.scenarios:
            r = data["scenarios"].get(ref.id)
            if not r:
                continue
            for rel, ls in r.get("lines", {}).items():
                lines.setdefault(rel, set()).update(ls)
            for d in comp.decls_for(comp.specs.name, ref.id):
                nodeids.update(rec["nodeid"] for rec in results.get((comp.specs.name, ref.id, d.check_key), []))
        if nodeids:
            plan.append((req.key, lines, sorted(nodeids)))
    if not plan:
        return {}
    since = st.changed_lines(root, args.since, sorted({f for _, ls, _ in plan for f in ls})) if args.since else None
    operators = st.operators()
    site_cache: dict[str, list[st.Site]] = {}
    test_files = sorted({n.split("::", 1)[0] for _, _, ns in plan for n in ns})
    echo(f"specgen proof: importing the product once for {len(plan)} requirement(s) ({len(test_files)} test file(s))")
    warm = st.warm(root, test_files, scratch)
    out: dict[str, dict] = {}
    if warm != 0:
        for key, _, _ in plan:
            out[key] = st.Strength(note=f"the generated tests did not collect (pytest exit {warm})").to_json()
        return out
    deadline = time.monotonic() + args.budget if args.budget else None
    per_mutant = float(settings.get("timeout", 0) or 0)
    for key, lines, nodeids in plan:
        result = st.Strength()
        if since is not None:
            lines = {f: ls & since.get(f, set()) for f, ls in lines.items()}
        sites = []
        for rel in sorted(lines):
            if rel not in site_cache:
                site_cache[rel] = st.file_sites(root / rel, rel, operators)
            sites += [s for s in site_cache[rel] if s.line in lines[rel]]
        result.sites = len(sites)
        if not sites:
            result.note = "no on-path line of its checks to mutate" + (f" changed since {args.since}" if since else "")
            out[key] = result.to_json()
            continue
        if deadline is not None and time.monotonic() > deadline:
            result.note = f"not run: --budget {args.budget}s spent"
            out[key] = result.to_json()
            continue
        t0 = time.monotonic()
        clean = st.run_forked(root, nodeids, scratch, max(per_mutant, 600.0), None)
        took = time.monotonic() - t0
        if clean != st.SURVIVED:
            result.note = f"its checks do not pass unmutated ({clean}); nothing to measure"
            out[key] = result.to_json()
            continue
        timeout = per_mutant or max(10.0, 5 * took)
        picked = st.pick(sites, args.mutants, args.seed, key)
        left = 0
        for i, site in enumerate(picked):
            if deadline is not None and time.monotonic() > deadline:
                left = len(picked) - i
                break
            mutant = st.build_mutant(root, site, maps.get(str(root / site.file)))
            if mutant is None:
                result.skipped += 1
                continue
            verdict = st.run_forked(root, nodeids, scratch, timeout, mutant)
            if verdict == st.SKIPPED:
                result.skipped += 1
                continue
            if verdict == st.ERROR:
                result.errors += 1
                continue
            result.total += 1
            if verdict == st.KILLED:
                result.killed += 1
            elif verdict == st.TIMEOUT:
                result.timeout += 1
            else:
                result.survived += 1
                result.survivors.append(
                    {
                        "where": f"{site.file}:{site.line}",
                        "operator": site.operator,
                        "occurrence": site.occurrence,
                        "mutation": f"{mutant.before} -> {mutant.after}",
                    }
                )
        if left:
            result.note = f"{left} sampled mutant(s) not run: --budget {args.budget}s spent"
        echo(
            f"specgen proof: {key}: {result.killed + result.timeout}/{result.total} mutants detected"
            + (f", {result.survived} survived" if result.survived else "")
        )
        out[key] = result.to_json()
    shutil.rmtree(scratch, ignore_errors=True)
    return out
