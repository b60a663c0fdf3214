"""The training core both stages share (each stage's recipe calls these public pieces; no recipe
imports another's private parts):

- ``settings``: the typed run settings read once from a ``TrainingConfig`` (TrainingArguments,
  loss weights, LR buckets, image cap, save delay, resume), and ``TrainSetupError``;
- ``inputs``: the inputs a config names must exist, record -> template dict, the datasets;
- ``model``: the Qwen3-VL model, its tuner (full / LoRA / DoRA) and the coord-offset adapter;
- ``trainer``: ``CoordExpTrainer`` (LR-bucket optimizer, weight-only saves, transformers'
  own callbacks) and the ``SaveDelay`` callback;
- ``saving``: rank-0 writes (manifest, summaries, final checkpoint) and weight-only resume;
- ``entry``: how a recipe's ``main`` reports a run that could not start (one line, exit 2);
- ``objectives``: the stage_1 objective and the coord losses stage_2 reuses;
- ``packing``: static packing of encoded samples, collation and mRoPE positions;
- ``artifacts``: the run manifest and the weight-only checkpoint policy.

Stage recipes: ``coordexp.stage1.trainer`` and ``coordexp.stage2.trainer``; ``coordexp.train``
only dispatches between them.
"""
