"""``CoordExpTrainer``: transformers' Trainer with what every coordexp stage shares.

- the multimodal LR buckets (LLM / ViT / aligner / coord-offset rows) through the Trainer's
  own optimizer helpers (``get_decay_parameter_names``, ``get_optimizer_cls_and_kwargs``);
- weight-only saves: the model's weights plus ``coord_offset.safetensors``, on the saving
  rank only (``args.should_save``);
- under several ranks, the coord-offset gradients averaged like DDP averages the model's;
- transformers' own flow/progress/printer callbacks, even after ms-swift has patched them.

Each stage subclasses it with its loss and step (``coordexp.stage1.trainer``,
``coordexp.stage2.trainer``).
"""

from __future__ import annotations

from transformers import Trainer, TrainerCallback

from coordexp.training.saving import save_coord_offset
from coordexp.training.settings import LrBuckets


def restore_transformers_callbacks(handler) -> int:
    """Put transformers' own flow/progress/printer callbacks back where a subclass stands.

    Importing any ``swift.trainers`` module (ms-swift's rollout protocol pulls it in) replaces
    ``transformers.trainer.DEFAULT_CALLBACKS`` process-wide with ms-swift's subclasses, whose flow
    callback reads ms-swift-only arguments (``args.max_epochs``) and fails on plain
    ``TrainingArguments``. Replaced in place: the order against our SaveDelay callback matters.
    Returns how many were replaced.
    """
    from transformers import trainer_callback as tc

    replaced = 0
    for i, cb in enumerate(handler.callbacks):
        for original in (tc.DefaultFlowCallback, tc.ProgressCallback, tc.PrinterCallback):
            if isinstance(cb, original) and type(cb) is not original:
                handler.callbacks[i] = original()
                replaced += 1
                break
    return replaced


class CoordExpTrainer(Trainer):
    """The Trainer both stages subclass: LR buckets, weight-only saves, coord-offset adapter."""

    def __init__(self, *args, coord_offset=None, lr_buckets: LrBuckets | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        restore_transformers_callbacks(self.callback_handler)
        self.coord_offset = coord_offset
        if coord_offset is not None:
            # The adapter is not a submodule of the model (its weights are saved apart), so the
            # Trainer's move of the model to args.device does not move it: found on CUDA.
            coord_offset.to(self.args.device)
        self.lr_buckets = lr_buckets or LrBuckets()
        if coord_offset is not None:
            self.add_callback(CoordOffsetGradSync(coord_offset))

    # -- the training order: the dataset's own epoch sampler (data.EpochSampler), never the Trainer's shuffle
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if hasattr(dataset, "sampler"):
            return dataset.sampler()
        return super()._get_train_sampler(train_dataset)

    # -- optimizer: LR buckets (LLM / ViT / aligner / coord offset) through the Trainer helpers
    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = model if model is not None else self.model
        decay = set(self.get_decay_parameter_names(model))
        b = self.lr_buckets
        groups: dict[tuple, list] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            lr = self.args.learning_rate
            if ".visual." in f".{name}":
                lr = (b.aligner_lr if "merger" in name else b.vit_lr) or lr
            wd = self.args.weight_decay if name in decay else 0.0
            groups.setdefault((lr, wd), []).append(p)
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in sorted(groups.items())]
        if self.coord_offset is not None:
            param_groups.append(
                {
                    "params": [self.coord_offset.embed],
                    "lr": b.coord_embed_lr or self.args.learning_rate,
                    "weight_decay": b.coord_weight_decay,
                }
            )
            if self.coord_offset.head is not None:
                param_groups.append(
                    {
                        "params": [self.coord_offset.head],
                        "lr": b.coord_head_lr or self.args.learning_rate,
                        "weight_decay": b.coord_weight_decay,
                    }
                )
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        kwargs.pop("lr", None)
        self.optimizer = cls(param_groups, lr=self.args.learning_rate, **kwargs)
        return self.optimizer

    # -- weight-only saves: the model's weights (+ the coord-offset adapter), nothing else
    def save_model(self, output_dir=None, _internal_call=False):
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.coord_offset is not None and self.args.should_save:
            save_coord_offset(self.coord_offset, output_dir or self.args.output_dir)


class CoordOffsetGradSync(TrainerCallback):
    """Average the coord-offset gradients over the ranks before each optimizer step.

    The adapter sits beside the model, not inside the DDP-wrapped module, so DDP's gradient
    all-reduce never sees its tables: without this, each rank would step its own offsets on its
    own share of the batch and the ranks' copies would drift apart (rank 0's is the one saved).
    Averaging matches what DDP does for the model's parameters.
    """

    def __init__(self, adapter):
        self.adapter = adapter

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return control
        for p in self.adapter.parameters():
            if p.grad is None:  # a rank without coord tokens this step still joins the reduction
                p.grad = p.detach().new_zeros(p.shape)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(dist.get_world_size())
        return control


class SaveDelay(TrainerCallback):
    """No checkpoint before `save_delay_steps` (the final one is written after training anyway)."""

    def __init__(self, delay: int):
        self.delay = delay

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step < self.delay:
            control.should_save = False
        return control
