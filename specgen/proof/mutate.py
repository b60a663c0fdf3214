"""The strength pass of ``specgen proof --mutants N``: per requirement, its sites, its sample, its mutants.

Reads the reach just measured (the on-path lines of each scenario) and the proof run's results (which
generated test runs which binding); drives :mod:`specgen.proof.strength`. Deterministic for one seed:
requirements in spec order, sites sorted, the sample seeded by the requirement id.

Mutants run breadth-first (:func:`rounds`): every requirement's first sampled mutant before any
requirement's second, and so on, requirements in spec order within a round. Under ``--budget`` a run that
stops early has then given every requirement it reached a score from the same number of mutants (give or
take one), not used the budget up on the first requirements in spec order; what was not run is noted per
requirement and counted in ``proof.json``'s ``mutation``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from specgen.proof import strength as st


@dataclass
class Plan:
    """One requirement's share of the mutation run."""

    key: str
    nodeids: list[str]
    picked: list = field(default_factory=list)  # the sampled sites, in order
    result: st.Strength = field(default_factory=st.Strength)
    timeout: float = 0.0  # per mutant, set by the unmutated run
    blocked: bool = False  # its unmutated run did not pass: no mutant of it runs
    ran: int = 0  # sampled mutants tried (whatever their verdict)


def rounds(counts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Breadth-first order over (requirement, number of mutants) in the given order: round i holds the i-th
    mutant of every requirement that has one."""
    order = []
    for i in range(max((n for _, n in counts), default=0)):
        order += [(key, i) for key, n in counts if i < n]
    return order


def execute(plans: list[Plan], clean, mutant, out_of_time) -> list[str]:
    """Run `plans` breadth-first until `out_of_time()`; `clean(plan)` runs a requirement's tests unmutated
    (before its first mutant) and says whether they passed, `mutant(plan, site)` runs one. The sequence run,
    as "<requirement>#<index>"."""
    by_key = {p.key: p for p in plans}
    sequence = []
    for key, i in rounds([(p.key, len(p.picked)) for p in plans]):
        plan = by_key[key]
        if plan.blocked:
            continue
        if out_of_time():
            break
        if i == 0 and not clean(plan):
            plan.blocked = True
            continue
        mutant(plan, plan.picked[i])
        plan.ran += 1
        sequence.append(f"{key}#{i}")
    return sequence


def _plans(comp, data: dict, results: dict) -> list[tuple[str, dict[str, set[int]], list[str]]]:
    out = []
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
            out.append((req.key, lines, sorted(nodeids)))
    return out


def requirements(comp, data: dict, args, work: Path, results: dict, maps, settings: dict, echo) -> tuple[dict, dict]:
    """Strength per requirement, and the run's summary (``proof.json``'s ``mutation``)."""
    root = comp.config.root
    summary = {
        "mutants": args.mutants,
        "seed": args.seed,
        "since": args.since,
        "budget": args.budget,
        "order": "breadth-first",
        "run": 0,
        "not_run": 0,
        "requirements_not_reached": [],
        "sequence": [],
    }
    scratch = work / "mutants"
    if scratch.is_dir():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    found = _plans(comp, data, results)
    if not found:
        return {}, summary
    since = st.changed_lines(root, args.since, sorted({f for _, ls, _ in found for f in ls})) if args.since else None
    operators = st.operators()
    site_cache: dict[str, list[st.Site]] = {}
    test_files = sorted({n.split("::", 1)[0] for _, _, ns in found for n in ns})
    echo(f"specgen proof: importing the product once for {len(found)} requirement(s) ({len(test_files)} test file(s))")
    warm = st.warm(root, test_files, scratch)
    out: dict[str, dict] = {}
    if warm != 0:
        for key, _, _ in found:
            out[key] = st.Strength(note=f"the generated tests did not collect (pytest exit {warm})").to_json()
        return out, summary
    plans = []
    for key, lines, nodeids in found:
        plan = Plan(key, nodeids)
        if since is not None:
            lines = {f: ls & since.get(f, set()) for f, ls in lines.items()}
        sites = []
        for rel in sorted(lines):
            if rel not in site_cache:
                site_cache[rel] = st.file_sites(root / rel, rel, operators)
            sites += [s for s in site_cache[rel] if s.line in lines[rel]]
        plan.result.sites = len(sites)
        if not sites:
            plan.result.note = "no on-path line of its checks to mutate" + (
                f" changed since {args.since}" if since else ""
            )
        plan.picked = st.pick(sites, args.mutants, args.seed, key)
        plans.append(plan)
    deadline = time.monotonic() + args.budget if args.budget else None
    per_mutant = float(settings.get("timeout", 0) or 0)

    def clean(plan: Plan) -> bool:
        t0 = time.monotonic()
        verdict = st.run_forked(root, plan.nodeids, scratch, max(per_mutant, 600.0), None)
        if verdict != st.SURVIVED:
            plan.result.note = f"its checks do not pass unmutated ({verdict}); nothing to measure"
            return False
        plan.timeout = per_mutant or max(10.0, 5 * (time.monotonic() - t0))
        return True

    def one(plan: Plan, site: st.Site) -> None:
        _record(plan.result, site, root, maps, scratch, plan)

    def spent() -> bool:
        return deadline is not None and time.monotonic() > deadline

    summary["sequence"] = execute(plans, clean, one, spent)
    for plan in plans:
        result = plan.result
        left = 0 if plan.blocked else len(plan.picked) - plan.ran
        if left:
            result.note = (
                f"not run: --budget {args.budget}s spent"
                if not plan.ran
                else f"{left} of {len(plan.picked)} sampled mutant(s) not run: --budget {args.budget}s spent"
            )
            summary["not_run"] += left
            if not plan.ran:
                summary["requirements_not_reached"].append(plan.key)
        summary["run"] += plan.ran
        if plan.picked and not plan.blocked:
            echo(
                f"specgen proof: {plan.key}: {result.killed + result.timeout}/{result.total} mutants detected"
                + (f", {result.survived} survived" if result.survived else "")
                + (f" ({left} not run: budget)" if left else "")
            )
        out[plan.key] = result.to_json()
    shutil.rmtree(scratch, ignore_errors=True)
    return out, summary


def _record(result: st.Strength, site: st.Site, root: Path, maps, scratch: Path, plan: Plan) -> None:
    """Run one mutant of `plan` and count its verdict."""
    mutant = st.build_mutant(root, site, maps.get(str(root / site.file)))
    if mutant is None:
        result.skipped += 1
        return
    verdict = st.run_forked(root, plan.nodeids, scratch, plan.timeout, mutant)
    if verdict == st.SKIPPED:
        result.skipped += 1
    elif verdict == st.ERROR:
        result.errors += 1
    else:
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
