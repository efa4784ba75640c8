"""The DeepSpeed engine of the one Trainer loop (`deepspeed.initialize` with adlr_hf's TP groups as its `mpu`).

Checkpoint layout (DeepSpeed's own `save_checkpoint`): ZeRO 0-2 write `mp_rank_XX_model_states.pt` per TP rank
(`"module"` = that rank's shards, merged here by the TP plan); ZeRO-3 (TP=1 only) partitions parameters over the DP
ranks (`zero_pp_rank_*_mp_rank_XX_model_states.pt`), gathered with `deepspeed.utils.zero_to_fp32`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..parallel import MegatronMPU, ParallelState
from .engines import free_port, load_torch, loss_parts, merge_tp_state_dicts, on_gpu, strip_module_prefix, zero_stage

_MP_FILE = re.compile(r"^mp_rank_(\d+)_model_states\.pt$")
_ZERO3_FILE = re.compile(r"^zero_pp_rank_\d+_mp_rank_(\d+)_model_states\.pt$")


def broadcast_buffers(module: torch.nn.Module, state: ParallelState) -> None:
    """Copy the buffers (BatchNorm running statistics) of data-parallel rank 0 to the other DP ranks before a
    forward, as DDP's `broadcast_buffers` does: replicas then evaluate and checkpoint the same statistics (DeepSpeed
    saves rank 0's module state, so without it a resumed rank would evaluate with other statistics than before)."""
    import torch.distributed as dist

    if state.dp_size == 1:
        return
    buffers = [b for b in module.buffers() if b.numel() > 0]
    if buffers:
        source = dist.get_global_rank(state.dp_group, 0)
        for buffer in buffers:
            dist.broadcast(buffer, src=source, group=state.dp_group)


class DeepSpeedEngine:
    name = "deepspeed"

    def __init__(self, ds_config: dict, timeout: float | None = None):
        self.ds_config = ds_config
        self.timeout = timeout
        self.engine = None
        self.last_grad_norm = None
        self.last_loss_parts = {}

    @classmethod
    def from_args(cls, args, ds_config: dict) -> "DeepSpeedEngine":
        return cls(ds_config, args.collective_timeout)

    def init_distributed(self) -> None:
        import datetime

        import deepspeed

        if int(os.environ.get("WORLD_SIZE", "1")) == 1 and "RANK" not in os.environ:
            # A plain `python` run: DeepSpeed would look for MPI; describe a one-process world instead.
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(free_port()))
        if not on_gpu():
            # DeepSpeed's CPU shared-memory comm op is JIT-compiled on first use; plain gloo gives identical results.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        timeout = {} if self.timeout is None else {"timeout": datetime.timedelta(seconds=self.timeout)}
        deepspeed.init_distributed(dist_backend="nccl" if on_gpu() else "gloo", **timeout)

    def setup(self, model, optimizer, scheduler, state: ParallelState):
        import deepspeed

        if zero_stage(self.ds_config) == 3 and state.tp_size > 1:
            raise ValueError("ZeRO stage 3 partitions parameters across data-parallel ranks, which does not compose "
                             f"with tensor parallelism here (tp={state.tp_size}); use ZeRO 0-2 with --tp, or --tp 1.")
        uses_config_optimizer = "optimizer" in self.ds_config
        self.state = state
        self.engine, _, _, _ = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=None if uses_config_optimizer else optimizer,
            lr_scheduler=scheduler,
            mpu=MegatronMPU(state) if state.tp_size > 1 else None,
            config=self.ds_config,
        )
        return self.engine

    @property
    def module(self):
        return self.engine.module

    @property
    def device(self):
        return self.engine.device

    def micro_step(self, batch) -> torch.Tensor:
        broadcast_buffers(self.engine.module, self.state)
        outputs = self.engine(**batch)
        loss = outputs.loss
        self.last_loss_parts = loss_parts(outputs)
        self.engine.backward(loss)
        boundary = self.engine.is_gradient_accumulation_boundary()
        self.engine.step()
        if boundary:
            norm = self.engine.get_global_grad_norm()
            self.last_grad_norm = None if norm is None else float(norm)
        return loss.detach()

    def lr(self) -> float:
        return self.engine.get_lr()[0]

    def train(self, mode=True):
        self.engine.train(mode)

    def save(self, checkpoint_dir: Path) -> None:
        # The run moves its own `latest` pointer once every rank's files are complete (checkpoint.py).
        self.engine.save_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name, save_latest=False)

    def load(self, checkpoint_dir: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)
        if path is None:
            raise ValueError(f"DeepSpeed found no loadable checkpoint in {checkpoint_dir}")

    def export_context(self):
        """Parameters gathered to full tensors for saving (only ZeRO-3 partitions them)."""
        import contextlib

        if zero_stage(self.ds_config) == 3:
            import deepspeed

            return deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()), modifier_rank=None)
        return contextlib.nullcontext()

    def describe(self) -> dict:
        return {"engine": "deepspeed", "zero_stage": zero_stage(self.ds_config),
                "bf16": bool(self.ds_config.get("bf16", {}).get("enabled", False)),
                "fp16": bool(self.ds_config.get("fp16", {}).get("enabled", False))}

    @classmethod
    def read_state_dict(cls, checkpoint_dir: Path, model: torch.nn.Module, trainer_state: dict) -> dict:
        """The full, plain-named weights of a checkpoint this engine wrote, for `model` (a dense model)."""
        tp = int(trainer_state.get("tp", 1))
        mp_files = {int(m.group(1)): p for p in checkpoint_dir.iterdir() if (m := _MP_FILE.match(p.name))}
        zero3 = int(trainer_state.get("zero_stage") or 0) == 3 or (
            not mp_files and any(_ZERO3_FILE.match(p.name) for p in checkpoint_dir.iterdir()))
        if zero3:
            if tp > 1:
                raise ValueError(f"{checkpoint_dir}: ZeRO-3 with TP={tp} is not a layout adlr_hf writes.")
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

            # zero_to_fp32 reads DeepSpeed's optimizer pickles itself (not weights_only); they are the run's own.
            state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)
            return {k: v.detach().cpu() for k, v in state.items()}
        if not mp_files:
            raise ValueError(f"{checkpoint_dir} has no mp_rank_XX_model_states.pt; it is not a complete DeepSpeed "
                             "checkpoint.")
        if sorted(mp_files) != list(range(len(mp_files))):
            raise ValueError(f"{checkpoint_dir} has TP ranks {sorted(mp_files)}; some mp_rank_XX files are missing.")
        if len(mp_files) != tp:
            raise ValueError(f"{checkpoint_dir} holds {len(mp_files)} TP shards but its trainer state says tp={tp}; "
                             "the checkpoint is incomplete or mixes runs.")
        shards = []
        for rank in range(len(mp_files)):
            saved = load_torch(mp_files[rank])
            if not isinstance(saved, dict) or "module" not in saved:
                raise ValueError(f"{mp_files[rank]} has no 'module' state dict; it is not a DeepSpeed model-states "
                                 "file.")
            shards.append(strip_module_prefix(dict(saved["module"])))
        return merge_tp_state_dicts(shards, model)
