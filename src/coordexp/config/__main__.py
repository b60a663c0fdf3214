"""`python -m coordexp.config <yaml> [--world-size N]`: print the materialized config as JSON.

Exit 0 with sorted, deterministic JSON on stdout (warnings on stderr); exit 2 with one line per
problem (``file:line: error: dotted.key: message``) on stderr. Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import ConfigError, ConfigWarning, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coordexp.config", description="Validate a coordexp training config and print it materialized."
    )
    parser.add_argument("config", help="the YAML file (its `extends` chain is followed)")
    parser.add_argument(
        "--world-size",
        type=int,
        default=None,
        help="data-parallel world size for the batch/GAS derivation (default: $WORLD_SIZE or 1)",
    )
    args = parser.parse_args(argv)
    if args.world_size is not None and args.world_size < 1:
        parser.error("--world-size must be >= 1")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)  # printed below from cfg.warnings, once each
            cfg = load_config(args.config, world_size=args.world_size)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue.format(), file=sys.stderr)
        n = len(exc.errors)
        print(f"{n} error{'s' if n != 1 else ''}: the config was not loaded", file=sys.stderr)
        return 2
    for line in cfg.warnings:
        print(line, file=sys.stderr)
    json.dump(cfg.to_dict(), sys.stdout, sort_keys=True, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
