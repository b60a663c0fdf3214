"""``specgen generate`` decided here, printed by the CLI: :func:`plan` finds what would change (generated files,
the lock) without writing; :func:`apply` writes it; :func:`summary` is the one-line account.

A broken item (a misspelt binding, an id collision, an unreadable check module) blocks only the scenarios it
touches: everything is still generated, those get failing tests saying why, and the run fails naming each item
(docs/compiler.md, "Per-item degradation"). What an unreadable spec held is unknown, not gone: its generated
files and lock lines are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from specgen.compile import cache, generator, lock
from specgen.compile.compiler import Compilation, compile_project, input_key
from specgen.config import Config
from specgen.errors import Issue


@dataclass(frozen=True)
class Plan:
    """What one ``generate`` (or ``generate --check``) finds. ``up_to_date`` is set, and nothing else is
    computed, when the stamp of the last full run says nothing was touched since."""

    config: Config
    up_to_date: str | None = None  # the last full run's summary, replayed
    comp: Compilation | None = None
    files: dict[str, generator.FilePlan] | None = None
    drift: generator.Drift | None = None
    wanted_lock: dict | None = None
    problems: tuple[Issue, ...] = ()
    missing: int = 0  # scenarios in scope without a check
    stamp_key: str | None = None  # a full run's key of its outputs (None for --change)
    inputs: str = ""

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.problems if i.level == "error"]

    @property
    def unreadable(self) -> tuple[Issue, ...]:
        return self.comp.project.unreadable if self.comp else ()

    @property
    def lock_stale(self) -> bool:
        return self.comp is not None and self.wanted_lock != self.comp.lock

    @property
    def stale_files(self) -> int:
        d = self.drift
        return len(d.changed) + len(d.missing) + len(d.extra) if d else 0

    @property
    def failed(self) -> bool:
        """Broken items or unreadable files: the run says so and exits 1 (after writing what it could)."""
        return bool(self.errors or self.unreadable)


def plan(config: Config, change: str | None = None) -> Plan:
    """Compile and compare with what is on disk; writes nothing but the compile cache (deferred to ``apply``)."""
    config.require_openspec()  # a missing openspec/ is named before anything about the checks
    inputs = input_key(config)  # generate writes outputs and the lock, never an input: computed once
    stamp_key = None
    if not change:
        # A run after which nothing was touched (inputs, lock, generated files) has nothing to do: the stamp
        # left by the last full run says so without reading a spec (a no-op on 10,000 scenarios would
        # otherwise spend its time re-reading them).
        stamp_key = cache.outputs_key(inputs, config.lock_path, config.output_dir)
        stamp = cache.read_stamp(config.report_dir)
        if stamp.get("key") == stamp_key:
            return Plan(config, up_to_date=stamp["message"])
    changes = [change] if change else []
    comp = compile_project(config, changes, key=inputs, defer_store=True)
    out = comp.config.output_dir
    if change:
        view = comp.view(change)
        files = comp.generated_files([view])
        prefix = generator.file_name(view, "")[: -len(".py")]  # changes/test_<change>__
        scope = [n for n in generator.existing_generated(out) if n.startswith(prefix)]
        drift = generator.drift(out, files, scope)
        wanted_lock = comp.wanted_lock({view.name})
        views = [view]
    else:
        files = comp.generated_files()
        drift = generator.drift(out, files)
        wanted_lock = comp.wanted_lock()
        views = comp.views
    if comp.project.unreadable:
        drift = generator.Drift(drift.changed, drift.missing, ())
        wanted_lock = comp.lock
    missing = sum(1 for v in views for s in v.scenarios() if not comp.decls_for(v.name, s.id))
    return Plan(
        config,
        comp=comp,
        files=files,
        drift=drift,
        wanted_lock=wanted_lock,
        problems=tuple(comp.problems(changes)),
        missing=missing,
        stamp_key=stamp_key,
        inputs=inputs,
    )


def apply(p: Plan) -> None:
    """Write the generated files and the lock the plan found stale; after a clean full run, the stamp that lets
    the next untouched run skip the work."""
    if p.up_to_date is not None:
        return
    generator.write(p.comp.config.output_dir, p.files, p.drift, p.comp.root)
    if p.lock_stale:
        lock.write(p.comp.config.lock_path, p.wanted_lock.values(), p.comp.root)
    if p.stamp_key is not None and not p.failed:
        # Keyed on the state after this run, so only an untouched tree matches it next time.
        config = p.config
        after = cache.outputs_key(p.inputs, config.lock_path, config.output_dir)
        unchanged = summary(p, after_write=True)
        cache.write_stamp(config.report_dir, after, unchanged, config.root)


def summary(p: Plan, after_write: bool = False) -> str:
    """``specgen generate: N file(s), W written, D deleted, U unchanged; M scenario(s) without a check``
    (``after_write``: as the next, untouched run will find it)."""
    if p.up_to_date is not None:
        return p.up_to_date
    n, d = len(p.files), p.drift
    written, deleted = (0, 0) if after_write else (len(d.changed) + len(d.missing), len(d.extra))
    unchanged = n if after_write else n - len(d.changed) - len(d.missing)
    return (
        f"specgen generate: {n} file(s), {written} written, {deleted} deleted, {unchanged} unchanged; "
        f"{p.missing} scenario(s) without a check"
    )
