"""Command line: argv -> the layers. Exit 0 ok, 1 gate failed or spec invalid, 2 bad input or usage.

Each group of commands registers its own sub-parsers:
- ``specgen.cli_specs``: list, show (reading OpenSpec)
- ``specgen.cli_validate``: validate, apply (OpenSpec's validation rules and archive semantics)
- ``specgen.cli_compile``: generate, check, stub, review, report (the compiler and the gate)
A sub-parser sets ``func(args) -> int`` as its default.
"""

from __future__ import annotations

import argparse
import os
import sys

from specgen import __version__
from specgen.model import SpecgenError


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on usage errors already; keep its message on one line with a hint.
    def error(self, message: str) -> None:  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="specgen",
        description="OpenSpec-driven spec-to-test compiler: read openspec/, bind scenarios to checks, "
        "generate pytest files, and gate CI on verified requirements.",
        epilog="Exit status: 0 ok; 1 gate failed or spec invalid; 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"specgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from specgen import cli_compile, cli_specs, cli_validate

    cli_specs.register(sub)
    cli_validate.register(sub)
    cli_compile.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except SpecgenError as exc:
        print(f"specgen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specgen: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `specgen show ... | head`: the reader went away; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RecursionError:
        print("specgen: error: input nested too deeply to process", file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback for a user; SPECGEN_DEBUG=1 shows it
        if os.environ.get("SPECGEN_DEBUG"):
            raise
        print(f"specgen: internal error: {type(exc).__name__}: {exc} "
              "(rerun with SPECGEN_DEBUG=1 for the traceback, and report it)", file=sys.stderr)
        return 2
