"""coordexp: the CoordExp training pipeline (stage_1 SFT, stage_2 AB rollout matching).

Knows nothing about specgen. What it implements is specified by the capabilities under openspec/specs/ (all but
spec-test-compiler) and described in docs/ (config-and-data, coordjson, chat-template, stage1, stage2).
"""

__version__ = "0.1.0"
