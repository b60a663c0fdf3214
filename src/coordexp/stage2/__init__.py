"""Stage-2 AB: the recipe (``trainer``), its launcher with a rollout server (``launcher``), and the steps it runs.

Small modules, each owning one step (see docs/stage2.md):

- ``trainer``: the stage_2 recipe on transformers' Trainer (setup, A/B steps, eval, saving);
- ``launcher``: the preflight and readiness of ``scripts/train_stage2.sh`` (server command, GPUs, cleanup);
- ``schedule``: Bresenham routing of optimizer steps to Channel A or B, realized ratio;
- ``channel_a``: teacher forcing on the ground truth with soft self-context;
- ``channel_b``: rollout ids -> append-ready prefix -> FN fragment -> CE weights and geometry targets;
- ``token_spans``: which tokens of a decoded text cover which characters (Channel-B and the segments);
- ``alignment``: the learner's and the server's prompt ids must agree;
- ``matching``: candidate selection, maskIoU gate, Hungarian assignment with dummies;
- ``segments``: one teacher-forced segment per sample, and their packed collation;
- ``post_pack``: channel-local FIFO buffers that pack segments after the rollouts;
- ``objective``: the loss of one packed forward (both channels) and its weights from the config;
- ``losses`` (torch): expectation decoding, SmoothL1 and CIoU, pooled;
- ``metrics``: metric keys and their step/rank aggregation;
- ``eval_detection``: COCO bbox metrics of a rollout eval.
"""
