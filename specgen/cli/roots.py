"""Which OpenSpec root a command works on, for every command (docs/compiler.md "Several OpenSpec roots").

A project has one root (``specs``) or several (``roots = ["packages/*/openspec"]``). Commands over the
whole project (check, generate, report, validate --all, list, baseline, init) run once per root, the
output of each headed ``== root <name> (<folder>)``; ``--only <root>`` picks one. Commands about one
item (show, validate <item>, apply, stub, review, evidence) take the root from a ``<root>:`` prefix on
the item (as ids read with several roots), from ``--only``, or from the one root that holds the item;
an item two roots hold is ambiguous and the error names each ``<root>:<item>`` to pass instead.
"""

from __future__ import annotations

from collections.abc import Callable

from specgen import config as specgen_config
from specgen.errors import SpecgenError


def found(args) -> list[specgen_config.Root]:
    """The roots a command runs over: all of them, or the one `--only` names."""
    return specgen_config.roots(specgen_config.resolve(args.root), getattr(args, "only", None))


def each(args, run: Callable[[specgen_config.Root], int], roots: list[specgen_config.Root] | None = None) -> int:
    """`run(root)` for every root; the worst exit status wins. With several roots each one's output
    is headed by its name and folder."""
    rc = 0
    for r in roots if roots is not None else found(args):
        if r.name:
            print(f"== root {r.name} ({r.config.specs})", flush=True)
        rc = max(rc, run(r))
    return rc


def split(roots: list[specgen_config.Root], item: str) -> tuple[specgen_config.Root | None, str]:
    """(the root a `<root>:` prefix names, the item without it); (None, item) without such a prefix."""
    if roots and roots[0].name and ":" in item:
        name, rest = item.split(":", 1)
        named = [r for r in roots if r.name == name]
        if named:
            return named[0], rest
    return None, item


def one(
    args,
    item: str,
    holds: Callable[[specgen_config.Root, str], bool],
    what: str,
    roots: list[specgen_config.Root] | None = None,
) -> tuple[specgen_config.Root, str]:
    """The root `item` belongs to, and the item as that root reads it (prefix dropped).

    `holds(root, item)`: whether that root has it; `what` names the kind of item in errors; `roots`: the
    project's roots when the caller has them."""
    roots = found(args) if roots is None else roots
    if not roots[0].name:  # one root: the item is looked up there, and errors are the command's own
        return roots[0], item
    named, rest = split(roots, item)
    if named is not None:
        return named, rest
    holders = [r for r in roots if holds(r, item)]
    if len(holders) == 1:
        return holders[0], item
    listing = ", ".join(f"{r.name} ({r.config.specs})" for r in roots)
    if not holders:
        raise SpecgenError(f"no {what} {item!r} in any OpenSpec root ({listing}); pass <root>:{item} or --only ROOT")
    raise SpecgenError(
        f"{what} {item!r} is in several OpenSpec roots; pass one of "
        + ", ".join(f"{r.name}:{item}" for r in holders)
        + " (or --only ROOT)"
    )


def config_of(args, scenario_id: str) -> specgen_config.Config:
    """The config of the root a scenario id belongs to (`<root>:` ids with several roots)."""
    all_roots = found(args)
    named, _ = split(all_roots, scenario_id)
    return (named or all_roots[0]).config
