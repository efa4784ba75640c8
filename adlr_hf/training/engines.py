"""The two training engines behind the one Trainer loop: DeepSpeed and Accelerate.

Both expose the same small surface: `init_distributed()` before the process groups exist, `setup()` to wrap the
model and optimizer, `micro_step(batch)` (forward, backward and, at an accumulation boundary, the optimizer step),
`save(dir)` / `load(dir)` for checkpoints, and `module` for the unwrapped model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..parallel import MegatronMPU, ParallelState
from ..parallel.grad_norm import clip_grad_norm_tp


def _on_gpu() -> bool:
    return torch.cuda.is_available()


def load_deepspeed_config(path: str | None) -> dict:
    if path is None:
        return {"zero_optimization": {"stage": 0}}
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"DeepSpeed config {path!r} does not exist; pass a JSON file such as "
                                "configs/deepspeed/zero1.json")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"DeepSpeed config {path!r} is not valid JSON ({err}); fix the file.") from None


def resolve_batch_config(ds_config: dict, micro_batch: int, grad_accum: int, dp_size: int, clip: float) -> dict:
    """Fill batch sizes and clipping from the command line; a config that disagrees is an error, not a guess."""
    config = json.loads(json.dumps(ds_config))
    for key, value in (("train_micro_batch_size_per_gpu", micro_batch), ("gradient_accumulation_steps", grad_accum)):
        if config.get(key, "auto") == "auto":
            config[key] = value
        elif int(config[key]) != value:
            raise ValueError(f"DeepSpeed config sets {key}={config[key]} but the command line asks for {value}; "
                             f"remove it from the config or pass the same value.")
    expected = config["train_micro_batch_size_per_gpu"] * config["gradient_accumulation_steps"] * dp_size
    if config.get("train_batch_size", "auto") == "auto":
        config["train_batch_size"] = expected
    elif int(config["train_batch_size"]) != expected:
        raise ValueError(
            f"DeepSpeed config train_batch_size={config['train_batch_size']} does not equal micro batch "
            f"{config['train_micro_batch_size_per_gpu']} × gradient accumulation "
            f"{config['gradient_accumulation_steps']} × data-parallel size {dp_size} = {expected}; "
            f"set it to {expected} or to \"auto\"."
        )
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = clip
    config.setdefault("steps_per_print", 10**9)  # the Trainer does the logging
    return config


def zero_stage(ds_config: dict) -> int:
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))


class DeepSpeedEngine:
    name = "deepspeed"

    def __init__(self, ds_config: dict):
        self.ds_config = ds_config
        self.engine = None
        self.last_grad_norm = None

    @staticmethod
    def init_distributed() -> None:
        import deepspeed

        if int(os.environ.get("WORLD_SIZE", "1")) == 1 and "RANK" not in os.environ:
            # A plain `python` run: DeepSpeed would look for MPI; describe a one-process world instead.
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
        if not _on_gpu():
            # DeepSpeed's CPU shared-memory comm op is JIT-compiled on first use; plain gloo gives identical results.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend="nccl" if _on_gpu() else "gloo")

    def setup(self, model, optimizer, scheduler, state: ParallelState):
        import deepspeed

        if zero_stage(self.ds_config) == 3 and state.tp_size > 1:
            raise ValueError("ZeRO stage 3 partitions parameters across data-parallel ranks, which does not compose "
                             f"with tensor parallelism here (tp={state.tp_size}); use ZeRO 0-2 with --tp, or --tp 1.")
        uses_config_optimizer = "optimizer" in self.ds_config
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
        loss = self.engine(**batch).loss
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
        self.engine.save_checkpoint(str(checkpoint_dir.parent), tag=checkpoint_dir.name)

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


class AccelerateEngine:
    """Accelerate with DDP over the data-parallel group only, so TP shards are never averaged together.

    Under `accelerate launch --use_deepspeed` Accelerate builds a DeepSpeed engine itself (TP=1 only: Accelerate
    has no way to hand DeepSpeed our TP groups).
    """

    name = "accelerate"

    def __init__(self, grad_accum: int, clip: float, micro_batch: int):
        self.grad_accum, self.clip, self.micro_batch = grad_accum, clip, micro_batch
        self.accelerator = None
        self.last_grad_norm = None

    def init_distributed(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import InitProcessGroupKwargs

        multi_process = int(os.environ.get("WORLD_SIZE", "1")) > 1
        handlers = [InitProcessGroupKwargs(backend="gloo")] if multi_process and not _on_gpu() else []
        if not _on_gpu() and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
            import deepspeed

            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # as in DeepSpeedEngine: no JIT build
        self.accelerator = Accelerator(gradient_accumulation_steps=self.grad_accum, kwargs_handlers=handlers,
                                       step_scheduler_with_optimizer=False)

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
            loss = self.model(**batch).loss
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

    def _tp_shard_file(self, checkpoint_dir: Path) -> Path:
        return checkpoint_dir / f"tp_rank_{self.state.tp_rank:02d}_model_optim.pt"

    def save(self, checkpoint_dir: Path) -> None:
        self.accelerator.save_state(str(checkpoint_dir))
        if self.state.tp_size > 1 and self.state.dp_rank == 0:
            # save_state writes the model and optimizer from the main process only (DDP replicas are identical);
            # under TP every rank of a replica holds different shards, so each TP rank saves its own.
            torch.save({"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()},
                       self._tp_shard_file(checkpoint_dir))

    def load(self, checkpoint_dir: Path) -> None:
        self.accelerator.load_state(str(checkpoint_dir))
        if self.state.tp_size > 1:
            shard = self._tp_shard_file(checkpoint_dir)
            if not shard.is_file():
                raise FileNotFoundError(f"{shard} is missing: the checkpoint was not written at TP={self.state.tp_size}")
            saved = torch.load(shard, map_location="cpu", weights_only=True)
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


def _ddp_kwargs_class():
    from dataclasses import dataclass, field

    from accelerate.utils import DistributedDataParallelKwargs

    @dataclass
    class DPGroupDDPKwargs(DistributedDataParallelKwargs):
        """Accelerate's DDP settings plus the process group to average gradients over (the DP group)."""

        process_group: object = field(default=None)

        def to_kwargs(self):
            kwargs = super().to_kwargs()
            kwargs["process_group"] = self.process_group
            return kwargs

    return DPGroupDDPKwargs


def _DPGroupDDPKwargs(**kwargs):
    return _ddp_kwargs_class()(**kwargs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
