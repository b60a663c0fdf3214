"""proof: reach and strength of every bound scenario (specgen.proof.run); heavy imports happen there."""

from __future__ import annotations

from specgen import config as specgen_config


def cmd_proof(args) -> int:
    from specgen.compile.compiler import compile_project
    from specgen.errors import SpecgenError
    from specgen.proof import run

    for name in ("mutants", "budget", "jobs"):
        if getattr(args, name) < (1 if name == "jobs" else 0):
            raise SpecgenError(f"--{name} {getattr(args, name)}: expected a number >= {1 if name == 'jobs' else 0}")
    found = specgen_config.roots(specgen_config.resolve(args.root))
    if found[0].name:
        raise SpecgenError("specgen proof: one OpenSpec root per project for now; run it with --root on each")
    return run.run(compile_project(found[0].config), args)
