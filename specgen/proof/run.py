"""``specgen proof``: reach (and, with ``--mutants N``, strength) of every bound scenario -> ``proof.json``.

1. the generated tests of ``openspec/specs`` run under coverage.py, one context per binding (only the bindings
   whose inputs changed since the last run, when its records are usable: :mod:`specgen.proof.incremental`;
   ``--full``: all); their outcomes are merged into ``<report dir>/results.json`` for ``specgen report``;
2. each ``[tool.specgen.proof] entrypoints`` command runs under coverage.py, subprocesses measured (one whose
   executed files did not change since its last run is kept);
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
import shutil
import sys
import time
from pathlib import Path

from specgen import fsio, results
from specgen.errors import SpecgenError
from specgen.proof import incremental, measure, reach, stamp
from specgen.proof.names import PROOF_NAME, context_name, parse_context
from specgen.results import RESULTS_NAME


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
    return results.load_results(path)


def _bindings(comp, measured: dict) -> dict[str, tuple[str, str]]:
    """Each automated binding's context name -> (its scenario's stamp, the hash of the file defining its check)."""
    modules: dict[Path, str] = {}
    out = {}
    for ref in comp.specs.scenarios():
        for d in comp.decls_for(comp.specs.name, ref.id):
            if d.manual:
                continue
            if d.path not in modules:
                modules[d.path] = stamp.file_hash(d.path)
            out[context_name(comp.specs.name, ref.id, d.check_key)] = (
                measured["scenarios"].get(ref.id, ""),
                modules[d.path],
            )
    return out


def _publish_results(work: Path, target: Path) -> None:
    """The proof run's test outcomes into the results file `specgen report` reads, merged by test id as a
    pytest run merges them (a record of another test stays): one run serves the verdicts and reach."""
    mine = results.records(work / measure.RESULTS)
    if mine:
        results.write_merged(target, mine)


def _entrypoints(root, work, sources, commands, prior, files, maps) -> tuple[list, set[int]]:
    """Each entrypoint's run, rerun unless its record stands (:func:`incremental.entry_reusable`); the indexes
    kept. A rerun one's record (its run, the files it executed) is written once it has run."""
    runs, kept = [], set()
    for i, command in enumerate(commands):
        if incremental.entry_reusable(prior, i, command, files):
            entry = prior.entries[i]
            _echo(f"specgen proof: entrypoint kept (no file it ran changed): {command}")
            runs.append(measure.Run(command, entry["exit"], entry["seconds"]))
            kept.add(i)
            continue
        _echo(f"specgen proof: entrypoint: {command}")
        folder = incremental.entry_folder(work, i)
        r = measure.run_entrypoint(root, folder, sources, command)
        data = measure.combined(folder)
        ran = {maps.rel(f): files.get(maps.rel(f), "") for f in data.measured_files() if data.lines(f)}
        record = {"command": command, "exit": r.exit, "seconds": round(r.seconds, 1), "files": ran}
        incremental.save_entry(work, i, record)
        runs.append(r)
    return runs, kept


def _records(wanted, only, prior, files, new, exceptions, results) -> dict[str, incremental.Record]:
    """Each binding's record after this run: kept from the last run, or measured now (`new`: reach.CheckData)."""
    records: dict[str, incremental.Record] = {}
    for name, (scenario_stamp, module) in wanted.items():
        k = parse_context(name)
        if only is not None and name not in only:
            records[name] = prior.checks[name]
        elif results.get(k):  # a binding without an outcome (no generated test yet) is measured next time
            records[name] = incremental.Record(
                scenario_stamp,
                module,
                {rel: files.get(rel, "") for rel in new.files.get(k, ())},
                {rel: sorted(ls) for rel, ls in new.executed.get(k, {}).items()},
                {rel: sorted(ls) for rel, ls in new.in_process.get(k, {}).items()},
                exceptions.get(name),
            )
    return records


def _scenarios(comp, records, results, entry_functions, entry_lines, maps) -> dict[str, dict]:
    """Reach per scenario from its bindings' records (:func:`reach.scenario_reach`)."""
    scenarios: dict[str, dict] = {}
    for req in comp.specs.requirements:
        for ref in req.scenarios:
            decls = [d for d in comp.decls_for(comp.specs.name, ref.id) if not d.manual]
            if not decls:
                continue
            names = [context_name(comp.specs.name, ref.id, d.check_key) for d in decls]
            recs = [records[n] for n in names if n in records and results.get(parse_context(n))]
            if not recs:
                scenarios[ref.id] = {"status": "not-run", "functions": [], "off_path": [], "lines": {}}
                continue
            why = [r.exception for r in recs if r.exception is not None]
            r = reach.scenario_reach(
                [{f: set(ls) for f, ls in rec.executed.items()} for rec in recs],
                entry_functions,
                entry_lines,
                maps,
                "; ".join(why) if why else None,
                [{f: set(ls) for f, ls in rec.in_process.items()} for rec in recs],
            )
            scenarios[ref.id] = r.to_json()
    return scenarios


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
    files = stamp.file_hashes(sources, root)
    key = incremental.settings_key(s, config.output)
    wanted = _bindings(comp, measured)
    commands = list(s["entrypoints"])
    prior = None if getattr(args, "full", False) else incremental.load(work, key, len(commands))
    if prior is not None and not (work / measure.RESULTS).is_file():
        prior = None  # the outcomes the kept records stand on are gone
    table, outline_changed = incremental.file_table(prior, files, root)
    if prior is None:
        (work / measure.RESULTS).unlink(missing_ok=True)  # a full run records every outcome afresh
        only = None
        _echo(f"specgen proof: running {len(tests)} generated test file(s) under coverage.py")
    elif outline_changed:
        only = set(wanted)
        shown = ", ".join(outline_changed[:3]) + (
            f" and {len(outline_changed) - 3} more" if len(outline_changed) > 3 else ""
        )
        _echo(f"specgen proof: incremental reach: module-level code changed ({shown}): rerunning every binding")
    else:
        only = incremental.to_rerun(prior, wanted, files)
        _echo(
            f"specgen proof: incremental reach: rerunning {len(only)} of {len(wanted)} binding(s) under coverage.py "
            "(`--full` for all)"
        )
    test_run = measure.run_tests(root, work, sources, tests, args.jobs, only)
    if test_run.exit not in (0, 1):
        raise SpecgenError(
            f"the generated tests could not run under coverage.py (exit {test_run.exit}):\n{test_run.tail}"
        )
    _publish_results(work, config.report_dir / RESULTS_NAME)
    maps = reach.Maps(root)
    if prior is None:
        shutil.rmtree(work / "entrypoints", ignore_errors=True)  # no folder of an entrypoint no longer listed
    entry_runs, kept = _entrypoints(root, work, sources, commands, prior, files, maps)
    new = reach.check_data(measure.combined(work / "tests"), maps)
    entry_functions, entry_lines = reach.entry_lines(measure.combined(work / "entrypoints", "*/.coverage.*"), maps)
    exceptions = measure.exceptions(work)
    results = _results(work / measure.RESULTS)
    records = _records(wanted, only, prior, files, new, exceptions, results)
    scenarios = _scenarios(comp, records, results, entry_functions, entry_lines, maps)
    entry_json = [{"command": r.command, "exit": r.exit, "seconds": round(r.seconds, 1)} for r in entry_runs]
    incremental.save(work, key, records, table)
    data = {
        "version": 1,
        "stamp": measured,
        "tests": {"command": test_run.command, "exit": test_run.exit, "seconds": round(test_run.seconds, 1)},
        "entrypoints": [dict(e, kept=i in kept) for i, e in enumerate(entry_json)],
        "reach_run": {
            "mode": "full" if only is None else "incremental",
            "rerun": len(wanted) if only is None else len(only),
            "kept": 0 if only is None else len(wanted) - len(only),
            "module_level": outline_changed if prior is not None else [],
            "entrypoints": {"rerun": len(commands) - len(kept), "kept": len(kept)},
        },
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

        data["strength"], data["mutation"] = mutate.requirements(comp, data, args, work, results, maps, s, _echo)
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
