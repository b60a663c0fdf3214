"""coordexp: the CoordExp training pipeline (stage_1 SFT, stage_2 AB rollout matching).

Knows nothing about specgen. See ../shared/DOMAIN.md (in the developer workspace) for the facts it implements.
"""

__version__ = "0.1.0"
