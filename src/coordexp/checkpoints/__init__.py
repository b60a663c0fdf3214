"""Checkpoint preparation: ``vocab`` (add the coord vocabulary to a stock Qwen3-VL folder) and
``merge`` (fold a stage_1 LoRA/DoRA + coord-offset checkpoint into a plain model folder).
Procedure for real checkpoints: docs/checkpoints.md."""
