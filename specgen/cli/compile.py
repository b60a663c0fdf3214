"""generate, check, stub, review, report: the compiler and the gate on the command line.

Exit status: 0 ok; 1 gate failed or drift; 2 bad input or usage (raised as SpecgenError).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from specgen import config as specgen_config
from specgen.cli import roots
from specgen.compile import generate, generator, renames, review
from specgen.compile.compiler import compile_project
from specgen.compile.generator import stub_code
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
    p = generate.plan(config, args.change)
    if p.up_to_date is not None:
        print("specgen generate --check: up to date" if args.check else p.up_to_date)
        return 0
    comp = p.comp
    if args.check:
        if p.errors:
            sys.stderr.write(_problem_lines(p.problems, comp))
        if p.unreadable:
            _say_unreadable(comp, "the rest was compared")
            if p.drift.clean:
                return 1
        if p.drift.clean and not p.lock_stale:
            print("specgen generate --check: up to date")
            return 1 if p.errors else 0
        sys.stdout.write(generator.diff_text(comp.config.output_dir, p.files, p.drift, comp.config.output))
        if p.lock_stale:
            print(f"{comp.config.lock}: bindings added or removed since the last `specgen generate`")
        print(
            f"specgen generate --check: {p.stale_files} file(s) stale{' and the lock' if p.lock_stale else ''}; "
            "run `specgen generate`",
            file=sys.stderr,
        )
        return 1
    generate.apply(p)
    if p.problems:
        sys.stderr.write(_problem_lines(p.problems, comp))
    print(generate.summary(p))
    if p.errors:
        print(
            f"specgen generate: {len(p.errors)} broken item(s) above; their scenarios got failing tests, "
            "everything else was generated",
            file=sys.stderr,
        )
    if p.unreadable:
        _say_unreadable(comp, "the rest was generated")
    return 1 if p.failed else 0


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


def cmd_stub(args) -> int:
    comp = compile_project(roots.config_of(args, args.scenario_id))
    view, ref = review.find_scenario(comp, args.scenario_id)
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
    return _review(compile_project(roots.config_of(args, target)), args, target)


def _review(comp, args, target: str) -> int:
    stamped = review.review(comp, target, args.all)
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
