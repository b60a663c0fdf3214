"""Stage-1 (SFT) recipe: ``coordexp.stage1.trainer``."""
