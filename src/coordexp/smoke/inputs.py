"""Build the smoke inputs a config names under the repository's ``build/`` folder, when they are missing.

``python -m coordexp.smoke.inputs <config.yaml>`` (``scripts/train.sh`` and ``scripts/train_stage2.sh`` run it
before anything else): a ``model.model`` folder under ``<repo>/build/`` that does not exist becomes the tiny random
Qwen3-VL, and a missing ``custom.train_jsonl`` / ``custom.val_jsonl`` under it becomes the synthetic dataset
(both splits, seeded with the config's dataset seed). Paths outside ``build/`` are never written: a missing one is
left for the run's own checks to report. Progress goes to stderr (a launcher evaluates stdout). Exit 0 when the
inputs are there, 2 with one line per problem when the config does not load or a path cannot be built.

The training recipes never build anything: they only require the inputs to exist
(``coordexp.training.inputs.ensure_inputs``), so production code never imports this package.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from coordexp.training.settings import TrainSetupError


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def build_missing(cfg, *, log=None) -> list[str]:
    """Build what the config places under ``<repo>/build/`` and is missing; returns what was built."""
    say = log or (lambda msg: print(msg, file=sys.stderr))
    build = Path(cfg.repo_root) / "build"
    built: list[str] = []
    model_dir = Path(cfg.model.get("model") or "")
    if not model_dir.exists() and _under(model_dir, build):
        from coordexp.smoke.tiny import save_tiny

        say(f"building the tiny Qwen3-VL into {model_dir}")
        save_tiny(model_dir)
        built.append(str(model_dir))
    for key in ("train_jsonl", "val_jsonl"):
        p = getattr(cfg.custom, key)
        if p is None or Path(p).exists() or not _under(Path(p), build):
            continue
        from coordexp.smoke.synthetic import make_dataset

        say(f"writing the synthetic dataset into {Path(p).parent}")
        make_dataset(Path(p).parent, seed=cfg.dataset_seed)
        if not Path(p).exists():
            raise TrainSetupError(
                f"custom.{key}: {p} was not produced by the synthetic generator; "
                "point it at <dir>/train.coord.jsonl or <dir>/val.coord.jsonl"
            )
        built.append(str(p))
    return built


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m coordexp.smoke.inputs <config.yaml>", file=sys.stderr)
        return 2
    from coordexp.config import ConfigError, ConfigWarning, load_config

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)  # the run that follows reports them, once
            cfg = load_config(args[0])
        build_missing(cfg)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue.format(), file=sys.stderr)
        return 2
    except TrainSetupError as exc:
        print(f"{args[0]}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
