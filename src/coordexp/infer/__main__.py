"""``python -m coordexp.infer <config.yaml>``: run (or resume) inference; errors are one line each, exit 2."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from coordexp.config.issues import ConfigError
    from coordexp.format.data import DataError
    from coordexp.generation.backend import RolloutBackendError
    from coordexp.infer.artifact import ArtifactError
    from coordexp.infer.config import load_pipeline_config
    from coordexp.infer.model import ModelLoadError

    ap = argparse.ArgumentParser(
        prog="python -m coordexp.infer",
        description="run a checkpoint over a JSONL and write gt_vs_pred.jsonl (resumable)",
    )
    ap.add_argument("config", help="a pipeline config with an `infer:` section (YAML)")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_pipeline_config(ns.config, require=("infer",))
        from coordexp.infer.runner import run_inference

        r = run_inference(cfg.infer, config_path=cfg.config_path)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue.format(), file=sys.stderr)
        return 2
    except DataError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (ArtifactError, ModelLoadError, RolloutBackendError, ValueError, OSError) as exc:
        print(f"coordexp.infer: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"coordexp.infer: {r.artifact}: {r.total} samples ({r.skipped} already done, {r.generated} generated, "
        f"{r.torn} torn row re-run) in {r.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
