"""coordexp.config: YAML training configs with `extends`, a strict typed schema, coherence gates and the
Stage-2 profile contract. See docs/config-and-data.md.

    cfg = load_config("configs/stage2_ab/prod/ab_mixed.yaml")   # TrainingConfig, or ConfigError(.errors)
    python -m coordexp.config <yaml>                             # materialized JSON, or errors (exit 2)
"""

from .issues import ConfigError, ConfigWarning, Issue, Loc, dotted
from .loader import TrainingConfig, load_config

__all__ = ["ConfigError", "ConfigWarning", "Issue", "Loc", "TrainingConfig", "dotted", "load_config"]
