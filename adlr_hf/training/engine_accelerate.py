"""The Accelerate engine of the one Trainer loop: DDP over the data-parallel group only, so TP shards are never
averaged together.

Checkpoint layout: Accelerate's `save_state` (`model.safetensors`: the full weights at TP=1); at TP>1 every TP rank
also writes `tp_rank_XX_model_optim.pt` (`"model"`, `"optimizer"`: its shards), merged here by the TP plan.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..parallel import ParallelState
from ..parallel.grad_norm import clip_grad_norm_tp
from .engines import load_torch, loss_parts, merge_tp_state_dicts, on_gpu, strip_module_prefix


def tp_shard_file(checkpoint_dir: Path, tp_rank: int) -> Path:
    return checkpoint_dir / f"tp_rank_{tp_rank:02d}_model_optim.pt"


class AccelerateEngine:
    """Accelerate with DDP over the data-parallel group only, so TP shards are never averaged together.

    Under `accelerate launch --use_deepspeed` Accelerate builds a DeepSpeed engine itself (TP=1 only: Accelerate
    has no way to hand DeepSpeed our TP groups).
    """

    name = "accelerate"

    def __init__(self, grad_accum: int, clip: float, micro_batch: int, timeout: float | None = None):
        self.grad_accum, self.clip, self.micro_batch = grad_accum, clip, micro_batch
        self.timeout = timeout
        self.accelerator = None
        self.last_grad_norm = None
        self.last_loss_parts = {}

    @classmethod
    def from_args(cls, args, ds_config=None) -> "AccelerateEngine":
        return cls(args.grad_accum, args.clip_grad, args.micro_batch_size, args.collective_timeout)

    def init_distributed(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import InitProcessGroupKwargs

        multi_process = int(os.environ.get("WORLD_SIZE", "1")) > 1
        import datetime

        timeout = {} if self.timeout is None else {"timeout": datetime.timedelta(seconds=self.timeout)}
        handlers = [InitProcessGroupKwargs(backend="nccl" if on_gpu() else "gloo", **timeout)] if multi_process else []
        use_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        if not on_gpu() and use_deepspeed:
            import deepspeed

            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # as in DeepSpeedEngine: no JIT build
        # cpu=True on CPU machines (not with the DeepSpeed plugin, which it would switch off): without it a run started
        # by torchrun (not `accelerate launch`) is seen as one process and its data-parallel replicas never sync.
        self.accelerator = Accelerator(gradient_accumulation_steps=self.grad_accum, kwargs_handlers=handlers,
                                       step_scheduler_with_optimizer=False, cpu=not on_gpu() and not use_deepspeed)

    @property
    def uses_deepspeed(self) -> bool:
        return self.accelerator.state.deepspeed_plugin is not None

    def setup(self, model, optimizer, scheduler, state: ParallelState):
        if self.uses_deepspeed:
            if state.tp_size > 1:
                raise ValueError("Accelerate's DeepSpeed integration cannot use tensor parallelism; run with "
                                 "--engine deepspeed for --tp > 1, or drop --use_deepspeed from accelerate launch.")
            ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = self.micro_batch
            ds["gradient_accumulation_steps"] = self.grad_accum
            ds["train_batch_size"] = self.micro_batch * self.grad_accum * state.dp_size
            ds["gradient_clipping"] = self.clip
        elif state.tp_size > 1:
            self.accelerator.ddp_handler = _DPGroupDDPKwargs(process_group=state.dp_group)
        from accelerate.utils import DistributedType

        if state.dp_size > 1 and self.accelerator.distributed_type == DistributedType.NO:
            raise ValueError(f"Accelerate sees one process but the run has {state.dp_size} data-parallel ranks; start "
                             "it with `accelerate launch` or torchrun so that Accelerate's distributed set-up applies.")
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.state = state
        return self.model

    @property
    def module(self):
        return self.accelerator.unwrap_model(self.model)

    @property
    def device(self):
        return self.accelerator.device

    def micro_step(self, batch) -> torch.Tensor:
        acc = self.accelerator
        with acc.accumulate(self.model):
            outputs = self.model(**batch)
            loss = outputs.loss
            self.last_loss_parts = loss_parts(outputs)
            acc.backward(loss)
            if acc.sync_gradients:
                if self.uses_deepspeed:
                    norm = self.model.get_global_grad_norm() if hasattr(self.model, "get_global_grad_norm") else None
                elif self.state.tp_size > 1:
                    norm = clip_grad_norm_tp(self.model.parameters(), self.clip, self.state.tp_group)
                else:
                    norm = acc.clip_grad_norm_(self.model.parameters(), self.clip if self.clip > 0 else float("inf"))
                self.last_grad_norm = None if norm is None else float(norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
        return loss.detach()

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def train(self, mode=True):
        self.model.train(mode)

    def save(self, checkpoint_dir: Path) -> None:
        self.accelerator.save_state(str(checkpoint_dir))
        if self.state.tp_size > 1 and self.state.dp_rank == 0:
            # save_state writes the model and optimizer from the main process only (DDP replicas are identical);
            # under TP every rank of a replica holds different shards, so each TP rank saves its own.
            torch.save({"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()},
                       tp_shard_file(checkpoint_dir, self.state.tp_rank))

    def load(self, checkpoint_dir: Path) -> None:
        self.accelerator.load_state(str(checkpoint_dir))
        if self.state.tp_size > 1:
            shard = tp_shard_file(checkpoint_dir, self.state.tp_rank)
            if not shard.is_file():
                raise FileNotFoundError(f"{shard} is missing: the checkpoint was not written at TP={self.state.tp_size}")
            saved = load_torch(shard)
            self.module.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])

    def export_context(self):
        import contextlib

        return contextlib.nullcontext()

    def describe(self) -> dict:
        info = {"engine": "accelerate", "mixed_precision": str(self.accelerator.mixed_precision)}
        if self.uses_deepspeed:
            info["zero_stage"] = int(self.accelerator.state.deepspeed_plugin.zero_stage)
        return info

    @classmethod
    def read_state_dict(cls, checkpoint_dir: Path, model: torch.nn.Module, trainer_state: dict) -> dict:
        """The full, plain-named weights of a checkpoint this engine wrote, for `model` (a dense model)."""
        tp = int(trainer_state.get("tp", 1))
        if tp > 1:
            files = [tp_shard_file(checkpoint_dir, rank) for rank in range(tp)]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ValueError(f"{checkpoint_dir} lacks {missing} for its TP={tp} shards; it cannot be exported. "
                                 "Publish the run's model folder instead.")
            return merge_tp_state_dicts([strip_module_prefix(dict(load_torch(f)["model"])) for f in files], model)
        weights = checkpoint_dir / "model.safetensors"
        if not weights.is_file():
            raise ValueError(f"{checkpoint_dir} has no model.safetensors; it is not a complete Accelerate checkpoint.")
        from safetensors.torch import load_file

        return strip_module_prefix(load_file(weights))


def _ddp_kwargs_class():
    from dataclasses import dataclass, field

    from accelerate.utils import DistributedDataParallelKwargs

    @dataclass
    class DPGroupDDPKwargs(DistributedDataParallelKwargs):
        """Accelerate's DDP settings plus the process group to average gradients over (the DP group)."""

        process_group: object = field(default=None)

        def to_kwargs(self):
            # Accelerate deep-copies the fields, which a process group cannot be: leave it out of the copy.
            group, self.process_group = self.process_group, None
            try:
                kwargs = super().to_kwargs()
            finally:
                self.process_group = group
            kwargs["process_group"] = group
            return kwargs

    return DPGroupDDPKwargs


def _DPGroupDDPKwargs(**kwargs):
    return _ddp_kwargs_class()(**kwargs)


