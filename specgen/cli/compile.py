"""generate, check, stub, review, report: the compiler and the gate on the command line.

Exit status: 0 ok; 1 gate failed or drift; 2 bad input or usage (raised as SpecgenError).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from specgen import config as specgen_config
from specgen.cli import roots
from specgen.compile import cache, generator, lock, renames
from specgen.compile.compiler import compile_project, input_key
from specgen.compile.generator import stub_code
from specgen.compile.identity import id_shaped, split_id
from specgen.compile.stub import write_stub
from specgen.errors import SpecgenError
from specgen.report.gate import TERMINAL_LIMIT, format_issues, static_issues, worst_first


def _each_root(args, run) -> int:
    """`run(config)` for every OpenSpec root of the project (or the one `--only` names); the worst exit
    status wins. With several roots each one's output is headed by its name and folder."""
    found = roots.found(args)
    asked = getattr(args, "change", None)
    asked = [asked] if isinstance(asked, str) else list(asked or [])
    if found[0].name and asked:  # several roots: an active change belongs to the roots that hold it
        unknown = [c for c in asked if not any(_holds(r.config, c) for r in found)]
        if unknown:
            raise SpecgenError(
                f"no active change {unknown[0]!r} in any OpenSpec root: "
                + ", ".join(f"{r.name} ({r.config.specs})" for r in found)
            )
        found = [r for r in found if any(_holds(r.config, c) for c in asked)]
    return roots.each(args, lambda r: run(r.config), found)


def _holds(config, change_id: str) -> bool:
    return (config.openspec_dir / "changes" / change_id).is_dir()


def _changes_here(config, changes: list[str]) -> list[str]:
    """The asked-for changes this root holds (all of them in a single-root project, so an unknown id
    is reported as before)."""
    return [c for c in changes if not config.namespace or _holds(config, c)]


def cmd_generate(args) -> int:
    return _each_root(args, lambda config: _generate(config, args))


def _generate(config, args) -> int:
    # A run after which nothing was touched (inputs, lock, generated files) has nothing to do: the
    # stamp left by the last full run says so without reading a spec (a no-op on 10,000 scenarios
    # would otherwise spend its time re-reading them).
    config.require_openspec()  # a missing openspec/ is named before anything about the checks
    stamp_key = None
    inputs = input_key(config)  # generate writes outputs and the lock, never an input: computed once
    if not args.change:
        stamp_key = cache.outputs_key(inputs, config.lock_path, config.output_dir)
        stamp = cache.read_stamp(config.report_dir)
        if stamp.get("key") == stamp_key:
            print("specgen generate --check: up to date" if args.check else stamp["message"])
            return 0
    comp = compile_project(config, [args.change] if args.change else [], key=inputs, defer_store=True)
    # A broken item (a misspelt binding, an id collision, an unreadable check module) blocks only the
    # scenarios it touches: everything is still generated, those get failing tests saying why, and
    # the run exits 1 naming each item (docs/compiler.md, "Per-item degradation").
    problems = comp.problems([args.change] if args.change else [])
    errors = [i for i in problems if i.level == "error"]
    out = comp.config.output_dir
    unreadable = comp.project.unreadable
    if args.change:
        view = comp.view(args.change)
        files = comp.generated_files([view])
        prefix = generator.file_name(view, "")[: -len(".py")]  # changes/test_<change>__
        scope = [n for n in generator.existing_generated(out) if n.startswith(prefix)]
        d = generator.drift(out, files, scope)
        wanted_lock = comp.wanted_lock({view.name})
    else:
        files = comp.generated_files()
        d = generator.drift(out, files)
        wanted_lock = comp.wanted_lock()
    if unreadable:
        # What an unreadable file held is unknown, not gone: keep its generated files and lock lines.
        d = generator.Drift(d.changed, d.missing, ())
        wanted_lock = comp.lock
    lock_stale = wanted_lock != comp.lock
    label = comp.config.output
    if args.check:
        if errors:
            sys.stderr.write(_problem_lines(problems, comp))
        if unreadable:
            _say_unreadable(comp, "the rest was compared")
            if d.clean:
                return 1
        if d.clean and not lock_stale:
            print("specgen generate --check: up to date")
            return 1 if errors else 0
        sys.stdout.write(generator.diff_text(out, files, d, label))
        if lock_stale:
            print(f"{comp.config.lock}: bindings added or removed since the last `specgen generate`")
        n = len(d.changed) + len(d.missing) + len(d.extra)
        print(
            f"specgen generate --check: {n} file(s) stale{' and the lock' if lock_stale else ''}; "
            "run `specgen generate`",
            file=sys.stderr,
        )
        return 1
    generator.write(out, files, d, comp.root)
    if lock_stale:
        lock.write(comp.config.lock_path, wanted_lock.values(), comp.root)
    if problems:
        sys.stderr.write(_problem_lines(problems, comp))
    missing = sum(
        1
        for v in ([comp.view(args.change)] if args.change else comp.views)
        for s in v.scenarios()
        if not comp.decls_for(v.name, s.id)
    )
    print(
        f"specgen generate: {len(files)} file(s), {len(d.changed) + len(d.missing)} written, "
        f"{len(d.extra)} deleted, {len(files) - len(d.changed) - len(d.missing)} unchanged; "
        f"{missing} scenario(s) without a check"
    )
    if errors:
        print(
            f"specgen generate: {len(errors)} broken item(s) above; their scenarios got failing tests, "
            "everything else was generated",
            file=sys.stderr,
        )
    if unreadable:
        _say_unreadable(comp, "the rest was generated")
    if errors or unreadable:
        return 1
    if stamp_key is not None:
        # Keyed on the state after this run, so only an untouched tree matches it next time.
        after = cache.outputs_key(inputs, config.lock_path, config.output_dir)
        cache.write_stamp(
            config.report_dir,
            after,
            f"specgen generate: {len(files)} file(s), 0 written, "
            f"0 deleted, {len(files)} unchanged; {missing} scenario(s) without a check",
            config.root,
        )
    return 0


def _problem_lines(problems, comp) -> str:
    """`path:line: level: message [code]`, one per line, in file order."""
    return format_issues(
        sorted(set(problems), key=lambda i: (str(i.path or ""), i.line or 0, i.message)), comp, "lines", []
    )


def cmd_check(args) -> int:
    return _each_root(args, lambda config: _check(config, args))


def _check(config, args) -> int:
    from specgen.adopt import baseline

    changes = _changes_here(config, args.change)
    comp = compile_project(config, changes)
    found = sorted(static_issues(comp, changes) + renames.issues(comp), key=worst_first)
    issues, tolerated = baseline.tolerated_issues(
        found, comp, baseline.read(comp.config.baseline_path), comp.config.gated
    )
    limit = None if args.verbose else TERMINAL_LIMIT
    sys.stdout.write(format_issues(issues, comp, args.format, changes, limit))
    if tolerated:
        print(
            f"specgen check: {tolerated} baselined gap(s) or problem(s), or gap(s) of ungated requirements, not shown "
            f"({comp.config.baseline}, [tool.specgen] gate)",
            file=sys.stderr,
        )
    return 1 if any(i.level == "error" for i in issues) else 0


def _say_unreadable(comp, what: str) -> None:
    unreadable = comp.project.unreadable
    sys.stderr.write("".join(f"{i.human(generator.rel_path(i.path, comp.root))}\n" for i in unreadable))
    print(f"specgen generate: {len(unreadable)} file(s) could not be read; {what}", file=sys.stderr)


def _find_scenario(comp, scenario_id: str):
    for view in comp.views:
        ref = view.by_id.get(scenario_id)
        if ref is not None:
            return view, ref
    cap = split_id(scenario_id)[0] if id_shaped(scenario_id) else scenario_id
    close = sorted(i for v in comp.views for i in v.by_id if split_id(i)[0] == cap)
    hint = f"; ids of that capability: {', '.join(close[:5])}{' ...' if len(close) > 5 else ''}" if close else ""
    raise SpecgenError(f"no scenario {scenario_id!r}{hint} (`specgen list` shows the specs)")


def _root_of(args, scenario_id: str):
    """The config of the root a scenario id belongs to (`<root>:` ids with several roots)."""
    found = roots.found(args)
    named, _ = roots.split(found, scenario_id)
    return (named or found[0]).config


def cmd_stub(args) -> int:
    comp = compile_project(_root_of(args, args.scenario_id))
    view, ref = _find_scenario(comp, args.scenario_id)
    if not args.write:
        sys.stdout.write(stub_code(ref))
        return 0
    path, func = write_stub(comp, ref)
    print(
        f"specgen stub: added {func} to {path.relative_to(comp.root).as_posix()}; "
        "write the check, then run `specgen generate`"
    )
    return 0


def cmd_review(args) -> int:
    if not args.all and not args.target:
        raise SpecgenError("review needs a scenario id (or a prefix ending at '/') or --all")
    target = args.target or ""
    if args.all:  # every root
        return _each_root(args, lambda config: _review(compile_project(config), args, target))
    return _review(compile_project(_root_of(args, target)), args, target)


def _review(comp, args, target: str) -> int:

    def wanted(sid: str) -> bool:
        return args.all or sid == target or (target.endswith("/") and sid.startswith(target))

    entries = comp.wanted_lock()
    stamped = []
    for b in comp.bound:
        if not wanted(b.scenario_id):
            continue
        new = comp.current_entry(b)
        if entries.get(new.key) != new:
            stamped.append(new)
        entries[new.key] = new
    if not args.all and not any(wanted(b.scenario_id) for b in comp.bound):
        raise SpecgenError(f"no binding matches {target!r}: give a bound scenario id, a prefix ending at '/', or --all")
    lock.write(comp.config.lock_path, entries.values(), comp.root)
    for e in stamped:
        print(f"reviewed {e.scenario_id} <- {e.check}{'' if e.view == 'specs' else ' (change ' + e.view + ')'}")
    print(f"specgen review: {len(stamped)} binding(s) stamped in {comp.config.lock}")
    return 0


def cmd_report(args) -> int:
    from specgen.report import write  # the report (and Jinja2) only for `report`

    base = specgen_config.resolve(args.root)
    found = specgen_config.roots(base, args.only)
    if not found[0].name:  # one root: the report as it always was
        comp = compile_project(found[0].config)
        return write.run(
            comp,
            gate=args.gate,
            no_manual=args.no_manual,
            results=args.results,
            out=args.out,
            source_url=args.source_url,
            fmt=args.format,
            verbose=args.verbose,
        )
    # Several roots: a section (report folder) per root, all fed by the one results file, and a total.
    results = args.results or str(base.report_dir / "results.json")
    out = Path(args.out).resolve() if args.out else base.report_dir
    rc, sections = 0, []
    for r in found:
        print(f"== root {r.name} ({r.config.specs})", flush=True)
        comp = compile_project(r.config)
        rc = max(
            rc,
            write.run(
                comp,
                gate=args.gate,
                no_manual=args.no_manual,
                results=results,
                out=str(out / r.name),
                source_url=args.source_url,
                fmt=args.format,
                verbose=args.verbose,
            ),
        )
        sections.append((r, json.loads((out / r.name / "report.json").read_text(encoding="utf-8"))))
    print(write.total(sections, out, base.root))
    return rc
