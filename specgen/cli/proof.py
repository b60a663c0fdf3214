"""proof: reach and strength of every bound scenario (specgen.proof.run); heavy imports happen there."""

from __future__ import annotations

from specgen import project


def cmd_proof(args) -> int:
    from specgen.compile.compiler import compile_project
    from specgen.proof import run

    found = project.roots(project.resolve(args.root))
    if found[0].name:
        from specgen.errors import SpecgenError

        raise SpecgenError("specgen proof: one OpenSpec root per project for now; run it with --root on each")
    return run.run(compile_project(found[0].config), args)
