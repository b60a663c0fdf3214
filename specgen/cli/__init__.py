"""Command line: argv -> the layers. Exit 0 ok, 1 gate failed or spec invalid, 2 bad input or usage.

This module only parses arguments (standard library only) and imports the one module that runs
the command, so ``specgen list`` never loads the compiler, Jinja2 or pytest:

- :mod:`specgen.cli.specs`: list, show (reading OpenSpec)
- :mod:`specgen.cli.validate`, :mod:`specgen.cli.apply`: validate, apply (OpenSpec's rules and archive semantics)
- :mod:`specgen.cli.compile`: generate, check, stub, review, report (the compiler and the gate)
- :mod:`specgen.cli.adopt`: init, baseline, evidence (adopting specgen in an existing project)
- :mod:`specgen.cli.proof`: proof (reach and strength: coverage.py and a mutation library, loaded there only)

Every command takes ``--root DIR``, the project root, resolved once by :mod:`specgen.config`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from specgen import __version__
from specgen.errors import SpecgenError

ROOT_HELP = (
    "the project root: the folder with pyproject.toml, or the one holding openspec/ (default: the "
    "nearest such folder from here); [tool.specgen] specs says where openspec/ is"
)


def _columns() -> int:
    """The terminal width as shutil.get_terminal_size() reads it (COLUMNS, then the terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    # argparse makes a formatter for every add_argument and its default one imports shutil (and
    # with it bz2 and lzma) for the width: a few ms of every command's start-up.
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kw)

    # argparse exits 2 on usage errors already; keep its message on one line with a hint.
    def error(self, message: str) -> None:  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


ONLY_HELP = "with several OpenSpec roots ([tool.specgen] roots): only this one (its name or folder)"


def _command(sub, name: str, run: str, only: bool = True, **kw) -> argparse.ArgumentParser:
    p = sub.add_parser(name, **kw)
    p.add_argument("--root", metavar="DIR", default=None, help=ROOT_HELP)
    if only:  # every command but init works on one root of several when asked
        p.add_argument("--only", metavar="ROOT", default=None, help=ONLY_HELP)
    p.set_defaults(run=run)
    return p


def _reading_commands(sub) -> None:
    p = _command(
        sub,
        "list",
        "specs:cmd_list",
        help="list specs or active changes (as `openspec list`)",
        description="List active changes (default) or specs, as `openspec list` does.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--specs", action="store_true", help="list specs instead of changes")
    g.add_argument("--changes", action="store_true", help="list changes (the default)")
    p.add_argument(
        "--sort", choices=("recent", "name"), default="recent", help="changes: newest first (default) or by name"
    )
    p.add_argument("--json", action="store_true", help="JSON output, as `openspec list --json`")

    p = _command(
        sub,
        "show",
        "specs:cmd_show",
        help="show a spec or a change (as `openspec show`)",
        description="Show a spec or an active change, as `openspec show` does.",
    )
    p.add_argument("id", help="spec id (e.g. `auth` or `area/auth`) or change id")
    p.add_argument(
        "--type",
        type=str.lower,
        choices=("spec", "change"),
        default=None,
        help="what the id names, when it could be both",
    )
    p.add_argument("--json", action="store_true", help="JSON output, as `openspec show --json`")
    p.add_argument("--no-interactive", action="store_true", help="accepted for OpenSpec compatibility (never prompts)")


def _validation_commands(sub) -> None:
    p = _command(
        sub,
        "validate",
        "validate:run_validate",
        help="validate changes and specs exactly as `openspec validate` does",
        description="Validate OpenSpec changes and specs with the official CLI's rules, levels and "
        "messages. Exit 0 valid, 1 invalid, 2 usage error or unreadable input.",
    )
    p.add_argument("item", nargs="?", help="a change id or spec id (capability)")
    p.add_argument("--all", action="store_true", help="validate every active change and every spec")
    p.add_argument("--changes", action="store_true", help="validate every active change")
    p.add_argument("--specs", action="store_true", help="validate every spec")
    p.add_argument("--type", choices=["spec", "change"], help="the item's type, when its id names both")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--json", action="store_true", help="print the report as `openspec validate --json` does")

    p = _command(
        sub,
        "apply",
        "apply:run_apply",
        help="apply (archive) a change's deltas into openspec/specs/",
        description="Merge a change's delta specs into openspec/specs/ and move the change to "
        "openspec/changes/archive/, as `openspec archive <change> --yes` does. "
        "--dry-run prints the merged specs and writes nothing.",
    )
    p.add_argument("change", help="the change id")
    p.add_argument("--dry-run", action="store_true", help="print the merged specs; write nothing")


def _compile_commands(sub) -> None:
    p = _command(
        sub,
        "generate",
        "compile:cmd_generate",
        help="write tests/generated/ from the specs and the checks",
        description="Compile every scenario into a pytest test (one per binding) under the output "
        "folder; a scenario without a check gets a failing test that shows the check to add.",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 and show a diff if files are stale")
    p.add_argument("--change", metavar="ID", help="compile only active change ID (the specs with it applied)")

    p = _command(
        sub,
        "check",
        "compile:cmd_check",
        help="static gate: coverage, bindings, suspect links, stale files",
        description="Report uncovered requirements, unbound scenarios, checks bound to nothing, "
        "duplicate, suspect or unreviewed bindings, and stale generated files.",
    )
    p.add_argument("--format", choices=("text", "json", "github"), default="text")
    p.add_argument(
        "--change", metavar="ID", action="append", default=[], help="also gate active change ID (repeatable)"
    )
    p.add_argument("--verbose", action="store_true", help="text: every issue (default: the summary and the worst 40)")

    p = _command(sub, "stub", "compile:cmd_stub", help="print (or --write) a check skeleton for a scenario")
    p.add_argument("scenario_id", help="capability/requirement-slug/scenario-slug")
    p.add_argument("--write", action="store_true", help="append it to the capability's check module")

    p = _command(
        sub, "review", "compile:cmd_review", help="stamp bindings as reviewed against the current spec and check text"
    )
    p.add_argument("target", nargs="?", help="a scenario id, or a prefix ending at '/' (capability/ ...)")
    p.add_argument("--all", action="store_true", help="stamp every binding")

    p = _command(
        sub,
        "report",
        "compile:cmd_report",
        help="write build/specgen/report.{json,md,html}; --gate exits 1 if unverified",
    )
    p.add_argument("--gate", action="store_true", help="exit 1 when a requirement of openspec/specs is not verified")
    p.add_argument(
        "--format",
        choices=("text", "github"),
        default="text",
        help="github: the gate's findings as at most 10 annotations, worst first, and a notice",
    )
    p.add_argument(
        "--verbose", action="store_true", help="--gate: every finding (default: the summary and the worst 20)"
    )
    p.add_argument("--no-manual", action="store_true", help="count only automated results as verified")
    p.add_argument("--results", metavar="PATH", help="the plugin's results.json (default: <report dir>/results.json)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: [tool.specgen] report)")
    p.add_argument(
        "--source-url",
        metavar="URL",
        default="",
        help="prefix for links to spec lines, e.g. https://github.com/o/r/blob/<sha>/ (default: relative file links)",
    )


def _adoption_commands(sub) -> None:
    _command(
        sub,
        "init",
        "adopt:cmd_init",
        only=False,
        help="set up an existing OpenSpec project for specgen (idempotent)",
        description="Write what adoption needs and nothing else: [tool.specgen] and the pytest pythonpath "
        "in pyproject.toml, the checks package, build/specgen/ in .gitignore. Prints each change.",
    )

    p = _command(
        sub,
        "baseline",
        "adopt:cmd_baseline",
        help="record today's unverified requirements; the gate then fails only on new gaps",
        description="Write [tool.specgen] baseline (specgen.baseline.json): "
        "the gated requirements not verified now. `report --gate` tolerates them (verdict baselined) and "
        "fails on a listed one that is verified now. --update shrinks the file; it never grows.",
    )
    p.add_argument("--update", action="store_true", help="drop the entries verified or gone since (never adds)")
    p.add_argument("--results", metavar="PATH", help="the plugin's results.json (default: <report dir>/results.json)")

    p = _command(
        sub,
        "evidence",
        "adopt:cmd_evidence",
        help="record a manual check's run (evidence YAML)",
        description="Write the evidence record of a manual scenario under <manual>/evidence/: the current "
        "fingerprint, commit, who (git config), when, machine. A record made on a dirty tree, or for a "
        "commit that is not an ancestor of HEAD, is flagged and does not count.",
    )
    p.add_argument("scenario_id", help="capability/requirement-slug/scenario-slug")
    p.add_argument("--result", required=True, choices=("pass", "fail"))
    p.add_argument("--notes", default="", help="free text: machine, driver, duration, what you saw")


def _proof_command(sub) -> None:
    p = _command(
        sub,
        "proof",
        "proof:cmd_proof",
        help="measure reach (checks vs entrypoints) and, with --mutants, strength; writes proof.json",
        description="Run the generated tests and the [tool.specgen.proof] entrypoints under coverage.py: per "
        "scenario, the product functions its checks execute that no entrypoint runs (on-path, off-path, "
        "no-reach). --mutants N: mutate the on-path lines each requirement's checks execute and run only "
        "its checks against each mutant (killed, survived, timeout). `specgen report` shows the result.",
    )
    p.add_argument("--mutants", type=int, default=0, metavar="N", help="at most N mutants per requirement (0: none)")
    p.add_argument("--since", metavar="REF", help="mutate only lines changed since git REF")
    p.add_argument(
        "--full",
        action="store_true",
        help="rerun every generated test and entrypoint (default: only those whose inputs changed since the last run)",
    )
    p.add_argument("--seed", type=int, default=0, help="the sampling seed (same seed, same mutants)")
    p.add_argument("--budget", type=float, default=0, metavar="SECONDS", help="stop mutating after SECONDS (0: none)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="pytest-xdist workers for the test run (1: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="specgen",
        description="OpenSpec-driven spec-to-test compiler: read openspec/, bind scenarios to checks, "
        "generate pytest files, and gate CI on verified requirements.",
        epilog="Exit status: 0 ok; 1 gate failed or spec invalid; 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"specgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _reading_commands(sub)
    _validation_commands(sub)
    _compile_commands(sub)
    _adoption_commands(sub)
    _proof_command(sub)
    return parser


def _run(args) -> int:
    module, func = args.run.split(":")
    return int(getattr(importlib.import_module(f"specgen.cli.{module}"), func)(args) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return _run(args)
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
    except OSError as exc:
        # The user's environment (full or read-only disk, a folder where a file belongs, no permission):
        # one line naming the path, as for bad input.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"specgen: {where}error: {exc.strerror or exc}; check the path and the disk", file=sys.stderr)
        return 2
    except RecursionError:
        print("specgen: error: input nested too deeply to process", file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback for a user; SPECGEN_DEBUG=1 shows it
        if os.environ.get("SPECGEN_DEBUG"):
            raise
        print(
            f"specgen: internal error: {type(exc).__name__}: {exc} "
            "(rerun with SPECGEN_DEBUG=1 for the traceback, and report it)",
            file=sys.stderr,
        )
        return 2
