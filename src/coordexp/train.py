"""Training entrypoint: ``python -m coordexp.train <config.yaml>`` (behind ``scripts/train.sh``).

Dispatch only: a stage_2 AB config (``custom.trainer_variant: stage2_ab_training``) goes to
``coordexp.stage2.trainer``, any other to ``coordexp.stage1.trainer``. The recipes share the
training core in ``coordexp.training``.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    import argparse

    from coordexp.config import ConfigError, load_config

    ap = argparse.ArgumentParser(
        prog="coordexp.train",
        description="training from a YAML config: stage_1, or the stage_2 AB learner "
        "(custom.trainer_variant: stage2_ab_training)",
    )
    ap.add_argument("config", help="a training config (YAML)")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        stage2 = load_config(ns.config).is_stage2
    except ConfigError as exc:
        print(f"coordexp.train: config error:\n{exc}", file=sys.stderr)
        return 2
    if stage2:
        from coordexp.stage2.trainer import main as recipe_main
    else:
        from coordexp.stage1.trainer import main as recipe_main
    return recipe_main(ns.config)


if __name__ == "__main__":
    sys.exit(main())
