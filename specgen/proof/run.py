"""``specgen proof``: reach (and, with ``--mutants N``, strength) of every bound scenario -> ``proof.json``.

1. the generated tests of ``openspec/specs`` run under coverage.py, one context per binding;
2. each ``[tool.specgen.proof] entrypoints`` command runs under coverage.py, subprocesses measured;
3. reach per scenario (:mod:`specgen.proof.reach`);
4. with ``--mutants N``: strength per requirement (:mod:`specgen.proof.strength`), on the on-path lines
   its checks execute (``--since REF``: only lines changed since the ref), ``--seed``, ``--budget``;
5. ``<report dir>/proof.json``, stamped with what it measured (:mod:`specgen.proof.stamp`); ``specgen
   report`` shows it, stale once the code, a spec or a check changed since.

Exit 0 when everything ran; 1 when an entrypoint failed (its reach is then incomplete: said, not hidden);
2 for bad configuration.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from specgen import fsio
from specgen.errors import SpecgenError
from specgen.proof import measure, reach, stamp
from specgen.proof.names import PROOF_NAME, context_name


def settings(config) -> dict:
    s = dict(config.proof)
    if not s.get("source") or not s.get("entrypoints"):
        raise SpecgenError(
            "specgen proof needs [tool.specgen.proof] source = [the product's folders] and entrypoints = "
            '[shell commands that run it], e.g. source = ["src/pkg"], entrypoints = ["python -m pkg sample.txt"]',
            config.root / "pyproject.toml",
        )
    return s


def _echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _results(path: Path) -> dict[tuple[str, str, str], list[dict]]:
    from specgen.results import load_results

    return load_results(path)


def run(comp, args) -> int:
    config = comp.config
    s = settings(config)
    root = config.root
    sources = measure.source_dirs(root, s["source"])
    work = config.report_dir / "proof"
    out = config.report_dir / PROOF_NAME
    tests = sorted(p.relative_to(root).as_posix() for p in config.output_dir.glob("test_*.py"))
    if not tests:
        raise SpecgenError(f"no generated tests in {config.output}: run `specgen generate` first")
    started = time.monotonic()
    measured = stamp.stamp(comp, sources)  # what the run measures: taken before it starts
    _echo(f"specgen proof: running {len(tests)} generated test file(s) under coverage.py")
    test_run = measure.run_tests(root, work, sources, tests, args.jobs)
    if test_run.exit not in (0, 1):
        raise SpecgenError(
            f"the generated tests could not run under coverage.py (exit {test_run.exit}):\n{test_run.tail}"
        )
    entry_runs = measure.run_entrypoints(root, work, sources, list(s["entrypoints"]), _echo)
    maps = reach.Maps(root)
    test_data = measure.combined(work / "tests")
    entry_data = measure.combined(work / "entrypoints")
    entry_functions, entry_lines = reach.entry_lines(entry_data, maps)
    executed = reach.check_lines(test_data, maps)
    in_process = reach.check_lines(test_data, maps, in_process_only=True)
    exceptions = measure.exceptions(work)
    results = _results(work / "results.json")
    scenarios: dict[str, dict] = {}
    for req in comp.specs.requirements:
        for ref in req.scenarios:
            decls = [d for d in comp.decls_for(comp.specs.name, ref.id) if not d.manual]
            if not decls:
                continue
            keys = [(comp.specs.name, ref.id, d.check_key) for d in decls]
            if not any(results.get(k) for k in keys):
                scenarios[ref.id] = {"status": "not-run", "functions": [], "off_path": [], "lines": {}}
                continue
            why = [exceptions[context_name(*k)] for k in keys if context_name(*k) in exceptions]
            r = reach.scenario_reach(
                [executed.get(k, {}) for k in keys],
                entry_functions,
                entry_lines,
                maps,
                "; ".join(why) if why else None,
                [in_process.get(k, {}) for k in keys],
            )
            scenarios[ref.id] = r.to_json()
    data = {
        "version": 1,
        "stamp": measured,
        "tests": {"command": test_run.command, "exit": test_run.exit, "seconds": round(test_run.seconds, 1)},
        "entrypoints": [{"command": r.command, "exit": r.exit, "seconds": round(r.seconds, 1)} for r in entry_runs],
        "scenarios": scenarios,
        "strength": {},
    }
    if out.is_file():  # the last strength figures stay, under their own stamp, until new ones replace them
        try:
            old = json.loads(out.read_text(encoding="utf-8"))
            data["strength"], data["strength_stamp"] = old.get("strength", {}), old.get("strength_stamp")
            if "mutation" in old:
                data["mutation"] = old["mutation"]
        except (OSError, ValueError):
            pass
    _write(out, data)  # reach first: a mutation run that stops half-way loses no reach
    if args.mutants:
        _echo(summary(data, time.monotonic() - started, out.relative_to(root).as_posix()) + "; now the mutants")
        from specgen.proof import mutate

        data["strength"] = mutate.requirements(comp, data, args, work, results, maps, s, _echo)
        data["mutation"] = {"mutants": args.mutants, "seed": args.seed, "since": args.since, "budget": args.budget}
        data["strength_stamp"] = data["stamp"]
        _write(out, data)
    for r in entry_runs:
        if r.exit != 0:
            _echo(f"specgen proof: error: entrypoint `{r.command}` exited {r.exit}; its reach is incomplete:\n{r.tail}")
    print(summary(data, time.monotonic() - started, out.relative_to(root).as_posix()))
    return 1 if any(r.exit != 0 for r in entry_runs) else 0


def _write(out: Path, data: dict) -> None:
    fsio.write_text(out, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def summary(data: dict, seconds: float, where: str) -> str:
    counts: dict[str, int] = {}
    for r in data["scenarios"].values():
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    excepted = sum(1 for r in data["scenarios"].values() if r.get("exception"))
    parts = [f"{counts.get(k, 0)} {k}" for k in (reach.ON_PATH, reach.OFF_PATH, reach.NO_REACH, "not-run")]
    line = f"specgen proof: {len(data['scenarios'])} scenario(s): {', '.join(parts)}"
    if excepted:
        line += f" ({excepted} with a stated exception)"
    st = data.get("strength") or {}
    if st:
        killed = sum(v["killed"] + v["timeout"] for v in st.values())
        total = sum(v["total"] for v in st.values())
        line += f"; mutants: {killed}/{total} detected over {len(st)} requirement(s)"
    return f"{line}; {seconds:.0f}s; written {where}"
