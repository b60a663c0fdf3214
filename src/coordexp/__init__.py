"""coordexp: the CoordExp training pipeline (stage_1 SFT, stage_2 AB rollout matching).

Knows nothing about specgen. What it implements is specified by the capabilities under openspec/specs/ (all but
spec-test-compiler) and described in docs/ (config-and-data, coordjson, chat-template, stage1, stage2).

The packages, lowest layer first (an import only goes down; tests/coordexp/test_import_graph.py pins it):
``errors`` (the error base), ``format`` (coord tokens, CoordJSON, prompts, chat template, the JSONL contract),
``config``, ``training`` (the core both stages call) beside ``generation`` (rollouts for inference and stage_2),
``checkpoints``, ``infer``, ``eval``, the recipes ``stage1`` and ``stage2``, and ``train`` (picks a recipe).
``smoke`` (the tiny model, the synthetic data) builds the smoke profiles' inputs; production never imports it.
"""

__version__ = "0.1.0"
