"""Stage-2 AB: the A/B channel schedule, Channel-B rollout parsing, matching and target
building, the geometry losses, and the metric keys with their aggregation rules.

Small modules, each owning one step (see docs/stage2.md):

- ``schedule``: Bresenham routing of optimizer steps to Channel A or B, realized ratio;
- ``matching``: candidate selection, maskIoU gate, Hungarian assignment with dummies;
- ``channel_b``: rollout ids -> append-ready prefix -> FN fragment -> CE weights and geometry targets;
- ``losses`` (torch): expectation decoding, SmoothL1 and CIoU, pooled;
- ``metrics``: metric keys and their step/rank aggregation.
"""
