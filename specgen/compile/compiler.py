"""One compilation: config + spec model + views + check declarations + lock, resolved together.

Every command (generate, check, stub, review, report) starts here, so they all see the same
bindings and the same suspect/unreviewed verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from specgen.compile import cache, generator, lock, renames
from specgen.compile.identity import ScenarioRef, View, change_view, slugify, specs_view
from specgen.compile.registry import Bound, CheckModule, Decl, discover, module_files, near_misses, resolve
from specgen.config import Config
from specgen.errors import ERROR, Issue, SpecgenError
from specgen.model import Project
from specgen.reader.load import load_tree
from specgen.rules.archive import apply_change

# How a note about a check module that cannot be read starts (specgen.runtime.missing reads it: keep the two equal).
BROKEN_MODULE = "the check module "

# Lock states of a binding.
REVIEWED, SUSPECT, UNREVIEWED = "reviewed", "suspect", "unreviewed"


@dataclass
class Compilation:
    config: Config
    project: Project
    views: list[View]
    modules: list[CheckModule]
    bound: list[Bound]
    issues: list[Issue]  # from reading and resolving the check modules
    lock: dict[tuple[str, str, str], lock.Entry]
    _index: dict[tuple[str, str], list[Decl]] = field(default_factory=dict)
    # Generated-file digests, kept in the compile cache: they depend only on what the cache key covers.
    digests: dict[str, str] = field(default_factory=dict)
    _cache_key: str = ""
    _read_issues: list = field(default_factory=list)
    # (view, scenario id) -> the misspelt bindings that most likely meant it (its failing test names them)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    _unstored: bool = False  # compiled afresh and not yet in the cache (compile_project's defer_store)
    # A project never generated: no lock file and no generated test yet. Its first `generate` creates the
    # lock with the bindings found then (docs/compiler.md, "Suspect links"); afterwards only review stamps.
    first_run: bool = False

    def __post_init__(self) -> None:
        for b in self.bound:
            self._index.setdefault((b.view, b.scenario_id), []).append(b.decl)
        for decls in self._index.values():
            decls.sort(key=lambda d: (d.check_key, d.line))

    @property
    def root(self) -> Path:
        return self.config.root

    def view(self, name: str) -> View:
        for v in self.views:
            if v.name == name:
                return v
        raise SpecgenError(
            f"no active change {name!r}; active changes: " + (", ".join(v.name for v in self.views[1:]) or "none")
        )

    @property
    def specs(self) -> View:
        return self.views[0]

    def decls_for(self, view: str, scenario_id: str) -> list[Decl]:
        return self._index.get((view, scenario_id), [])

    def note_for(self, view: str, scenario_id: str) -> str:
        return self.notes.get((view, scenario_id), "")

    def problems(self, gated_changes=()) -> list[Issue]:
        """Everything that blocks part of the build, each naming its file:line: binding errors and
        unreadable check modules, id collisions in openspec/specs and in the gated changes (errors),
        and those in other active changes (warnings: an active change gates nothing unless asked)."""
        found = list(self.issues) + list(self.specs.problems)
        for view in self.views[1:]:
            gated = view.name in gated_changes
            found += [replace(i, level=ERROR) if gated else i for i in view.problems]
        return found

    def scenario(self, view: str, scenario_id: str) -> ScenarioRef:
        return self.view(view).by_id[scenario_id]

    def lock_state(self, view: str, scenario_id: str, decl: Decl) -> tuple[str, str]:
        """(REVIEWED|SUSPECT|UNREVIEWED, why)."""
        entry = self.lock.get((view, scenario_id, decl.check_key))
        if entry is None:
            return (
                UNREVIEWED,
                f"not reviewed (no line in the lock): read the check, then `specgen review {scenario_id}`",
            )
        ref = self.scenario(view, scenario_id)
        why = []
        if entry.spec_fp != ref.fingerprint:
            why.append("the scenario text changed")
        if entry.check_fp != decl.source_fingerprint:
            why.append("the check's source changed")
        if why:
            return SUSPECT, " and ".join(why) + f" since the last review: run `specgen review {scenario_id}`"
        return REVIEWED, ""

    def current_entry(self, b: Bound) -> lock.Entry:
        ref = self.scenario(b.view, b.scenario_id)
        return lock.Entry(b.view, b.scenario_id, b.decl.check_key, ref.fingerprint, b.decl.source_fingerprint)

    def wanted_lock(self, views: set[str] | None = None) -> dict:
        """The lock `generate` writes: existing lines for live bindings kept as they are (or carried over a
        rename), lines of gone bindings dropped (for views outside `views`, lines are left alone). A binding
        with no line gets none: only `specgen review` records a review, so an emptied or truncated lock
        cannot. The exception is a project's first run (`first_run`), whose lock starts from its bindings."""
        out = {k: e for k, e in self.lock.items() if views is not None and k[0] not in views}
        for b in self.bound:
            if views is not None and b.view not in views:
                continue
            key = (b.view, b.scenario_id, b.decl.check_key)
            entry = (
                self.lock.get(key)
                or renames.moved_entry(self, b)
                # a new project's first full generate starts its lock
                or (self.current_entry(b) if self.first_run and views is None else None)
            )
            if entry is not None:
                out[key] = entry
        return out

    def checks_hint(self) -> str:
        return ", ".join(self.config.checks)

    def generated_files(self, views: list[View] | None = None) -> dict:
        known = dict(self.digests)
        files = generator.plan(
            views or self.views, self.decls_for, self.root, self.checks_hint(), self.digests, self.note_for
        )
        if (self.digests != known or self._unstored) and self._cache_key:
            self._unstored = False
            cache.store(
                self.config.report_dir,
                self._cache_key,
                (self.project, self.views, self.modules, self._read_issues, self.digests),
                self.config.root,
            )
        return files


def input_key(config: Config) -> str:
    """A digest of the stat of every file a compilation reads (specs, check modules, config, specgen)."""
    files = [p for _, p in module_files(config.root, config.checks)] + [config.root / "pyproject.toml"]
    return cache.key(files, [config.root / config.specs])


def _unreadable_capabilities(project: Project) -> set[str]:
    """Capability ids of the spec files (main or delta) in `project.unreadable`."""
    caps: set[str] = set()
    for issue in project.unreadable:
        parts = Path(issue.path).parts
        if "specs" in parts and parts[-1] == "spec.md":
            at = len(parts) - 1 - parts[::-1].index("specs")
            caps.add("/".join(parts[at + 1 : -1]))
    return caps


# What the compile cache holds: the model, the views, the check modules, their read issues, the digests.
_CACHED = tuple[Project, list[View], list[CheckModule], list[Issue], dict[str, str]]


def compile_project(
    config: Config, validate_changes=(), key: str | None = None, defer_store: bool = False
) -> Compilation:
    """`config`: the project (:func:`specgen.config.resolve`). `validate_changes`: ids of active
    changes the caller asked for; they are applied with the validator's archive semantics first, so
    a change that cannot be archived is an error (exit 2). `key`: the caller's `input_key(config)`,
    when it already has it (stat-ing every input is not free). `defer_store`: the caller will call
    `generated_files`, which stores the cache with the digests (pickling 13,000 scenarios once, not twice)."""
    openspec_root = config.require_openspec()
    k = key or input_key(config)
    cached = cache.load(config.report_dir, k, _CACHED)
    if cached is None:
        project = load_tree(openspec_root)
        ns = config.namespace
        views = [specs_view(project, ns)] + [change_view(project, c, ns) for c in project.changes]
        modules, issues = discover(config.root, config.checks)
        cached = (project, views, modules, issues, {})
        if not defer_store:
            cache.store(config.report_dir, k, cached, config.root)
    project, views, modules, issues, digests = cached
    for change_id in validate_changes:
        change = project.change(change_id)
        if change is None:
            raise SpecgenError(
                f"no active change {change_id!r}; active changes: "
                + (", ".join(c.id for c in project.changes) or "none")
            )
        apply_change(project, change.id)  # refuses a change archive would refuse
    unread = _unreadable_capabilities(project)
    # A check bound to a spec that could not be read is not "bound to nothing": the read error says why.
    decls, foreign = _own_decls([d for m in modules for d in m.checks if d.capability not in unread], config)
    bound, more = resolve(decls, views)
    more += foreign
    return Compilation(
        config,
        project,
        views,
        modules,
        list(bound),
        issues + more,
        lock.read(config.lock_path, config.root),
        digests=dict(digests),
        _cache_key=k,
        _read_issues=issues,
        notes=near_misses(decls, bound, views) | _broken_module_notes(issues, views),
        _unstored=defer_store,
        first_run=_never_generated(config),
    )


def _never_generated(config: Config) -> bool:
    """No lock (not even an empty or broken one) and no generated test of openspec/specs under the output
    folder (those of active changes, from `generate --change`, do not count)."""
    path = config.lock_path
    if path.exists() or path.is_symlink():
        return False
    return not any("/" not in name for name in generator.existing_generated(config.output_dir))


# A `@check("id")` or `@check("cap", "Requirement", "Scenario")` line, read from the text of a module that
# does not parse (so has no syntax tree): enough to say which scenarios the broken module meant to bind.
_CHECK_LINE = re.compile(
    r"""^\s*@(?:\w+\.)?check\(\s*(["'])(.+?)\1(?:\s*,\s*(["'])(.+?)\3\s*,\s*(["'])(.+?)\5)?""", re.M
)


def _broken_module_notes(issues: list[Issue], views: list[View]) -> dict[tuple[str, str], str]:
    """(view, scenario id) -> why its check is not bound: the check module holding its @check does not
    parse or read. The scenario's failing generated test names that module instead of saying it has no check."""
    notes: dict[tuple[str, str], str] = {}
    for issue in issues:
        if issue.code != "unreadable-check-module" or issue.path is None:
            continue
        try:
            text = Path(issue.path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        where = f"{Path(issue.path).name}:{issue.line}" if issue.line else Path(issue.path).name
        name = re.search(r"module ([\w.]+)", issue.message)
        why = f"{BROKEN_MODULE}{name[1] if name else Path(issue.path).stem} ({where}) is broken: {issue.message}"
        for m in _CHECK_LINE.finditer(text):
            for view in views:
                ref = (
                    view.by_name.get((m[2], m[4], m[6])) or view.by_id.get(f"{m[2]}/{slugify(m[4])}/{slugify(m[6])}")
                    if m[4] is not None
                    else view.by_id.get(m[2])
                )
                if ref is not None:
                    notes[(view.name, ref.id)] = why
    return notes


def _own_decls(decls: list[Decl], config: Config) -> tuple[list[Decl], list[Issue]]:
    """With several roots, the declarations whose capability names this root (`name:cap`); the first
    root also reports those that name no root. One root: all of them, no issue."""
    if not config.namespace:
        return decls, []
    mine, issues = [], []
    for d in decls:
        ns = d.capability.split(":", 1)[0] if ":" in d.capability else None
        if ns == config.namespace:
            mine.append(d)
        elif ns not in config.siblings and config.namespace == config.siblings[0]:
            issues.append(
                Issue(
                    ERROR,
                    d.path,
                    d.line,
                    f"{d.func} is bound to {d.target}, which names no OpenSpec "
                    "root: with several roots a capability reads <root>:<capability>, roots: "
                    + ", ".join(config.siblings),
                    "unknown-root",
                )
            )
    return mine, issues
