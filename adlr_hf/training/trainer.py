"""One model-agnostic training loop: the model's forward returns the loss; the engine does the rest."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..parallel import ParallelState
from ..parallel.state import barrier
from .checkpoint import (
    CHECKPOINTS,
    checkpoint_name,
    commit_checkpoint,
    load_rng,
    partial_dir,
    prune_checkpoints,
    read_trainer_state,
    save_rng,
)
from .reporting import MetricsLog, format_summary, peak_memory_mib, plot_loss_curve
from .signals import StopOnSignal, TrainingStopped


def seeded_collate(collate):
    """The collator's own RNG (MLM masking), if any, so checkpoints can save and restore it."""
    generator = getattr(collate, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def to_device(batch, device):
    """`batch` with every tensor moved to `device`, through nested dicts, lists and tuples (relationship detection
    passes a list of per-image target dicts, video tasks pass clips)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@dataclass
class TrainPlan:
    """What the loop needs to know about a run, fixed before it starts."""

    total_steps: int
    grad_accum: int
    micro_batch_size: int
    units_per_sample: int  # tokens per sample for text, 1 for images or examples
    unit: str  # what throughput counts: "tokens", "images", "examples", ...
    seq_len: int | None
    save_every: int = 0
    save_total_limit: int = 0  # keep the newest N checkpoints (0: all)
    eval_every: int = 0
    log_every: int = 1
    progress: bool = True
    reports_perplexity: bool = False  # the loss is a mean next-token NLL: evaluation also reports exp(loss)
    meta: dict = field(default_factory=dict)  # recorded in trainer_state.json and run_info.json

    @property
    def units_per_micro_batch(self) -> int:
        return self.micro_batch_size * self.units_per_sample


def _mean_over(group, value: float, count: float = 1.0) -> float:
    """Weighted mean of `value` across a process group."""
    if group is None and not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value * count, count], dtype=torch.float64)
    dist.all_reduce(t, group=group)
    return (t[0] / t[1]).item()


class Trainer:
    def __init__(self, engine, state: ParallelState, plan: TrainPlan, train_loader, eval_loader, run_dir: Path,
                 metric=None, generators: dict | None = None):
        self.engine, self.state, self.plan = engine, state, plan
        self.metric = metric  # the task's evaluation metric (reset / add_batch / compute), or None
        self.generators = generators or {}  # RNGs outside torch's default one (e.g. MLM masking), checkpointed
        self.train_loader, self.eval_loader = train_loader, eval_loader
        # An evaluation collator with its own RNG (MLM masking) restarts from its first state every evaluation, so
        # every evaluation scores the same masked positions and its losses are comparable across steps.
        eval_rng = seeded_collate(getattr(eval_loader, "collate_fn", None))
        self._eval_rng = (eval_rng, eval_rng.get_state()) if eval_rng is not None else None
        self.run_dir = run_dir
        self.is_main = state.rank == 0
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=self.is_main)
        self.step = 0
        self.consumed_micro_batches = 0  # per DP rank, since the start of training
        self.units_seen = 0
        self.last_eval_loss = None
        self.saved_step = None  # the step of the newest checkpoint this run wrote or resumed from

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Every rank writes into the step's `.partial` folder; rank 0 then lists the files, renames the folder and
        moves `latest` (checkpoint.py), so a crash at any moment leaves the previous checkpoint complete."""
        final = self.run_dir / CHECKPOINTS / checkpoint_name(self.step)
        partial = partial_dir(self.run_dir, self.step)
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)  # a leftover of a crash while saving this step
            partial.parent.mkdir(parents=True, exist_ok=True)
        barrier()
        self.engine.save(partial)
        save_rng(partial, self.state.rank, self.generators)
        barrier()
        if self.is_main:
            commit_checkpoint(partial, final, {
                "step": self.step, "consumed_micro_batches": self.consumed_micro_batches,
                "units_seen": self.units_seen, "unit": self.plan.unit, "world_size": self.state.world_size,
                "tp": self.state.tp_size, "dp": self.state.dp_size, "grad_accum": self.plan.grad_accum,
                "micro_batch_size": self.plan.micro_batch_size, "seq_len": self.plan.seq_len, **self.plan.meta,
            })
            if self.plan.save_total_limit:
                prune_checkpoints(self.run_dir, self.plan.save_total_limit)
            plot_loss_curve(self.metrics.records, self.run_dir / "loss_curve.png")
        barrier()
        self.saved_step = self.step
        return final

    def resume_from(self, ckpt: Path) -> None:
        saved = read_trainer_state(ckpt)
        mine = {"tp": self.state.tp_size, "dp": self.state.dp_size, "grad_accum": self.plan.grad_accum,
                "micro_batch_size": self.plan.micro_batch_size, "seq_len": self.plan.seq_len}
        changed = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in changed.items())
            raise ValueError(f"cannot resume {ckpt} exactly with different settings ({detail}); "
                             "relaunch with the checkpoint's settings.")
        self.engine.load(ckpt)
        load_rng(ckpt, self.state.rank, self.generators)
        self.step = saved["step"]
        self.consumed_micro_batches = saved["consumed_micro_batches"]
        self.units_seen = saved["units_seen"]
        self.saved_step = self.step
        self.metrics.truncate_after(self.step)

    # -- evaluation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if self.eval_loader is None:
            return None
        self.engine.train(False)
        if self._eval_rng is not None:
            generator, first_state = self._eval_rng
            generator.set_state(first_state)
        if self.metric is not None:
            self.metric.reset()
        total, count = 0.0, 0
        for batch in self.eval_loader:
            batch = to_device(batch, self.engine.device)
            outputs = self.engine.module(**batch)
            total += outputs.loss.item()
            count += 1
            if self.metric is not None:
                self.metric.add_batch(outputs, batch)
        self.engine.train(True)
        loss = _mean_over(self.state.dp_group, total / max(count, 1), float(count))
        self.last_eval_loss = loss
        record = {"split": "eval", "step": self.step, "loss": loss}
        if self.plan.reports_perplexity:
            record["perplexity"] = float(torch.tensor(loss).exp())
        if self.metric is not None:
            record.update(sorted(self.metric.compute().items()))
        self.metrics.write(record)
        self.last_eval = record
        return loss

    # -- the loop ------------------------------------------------------------------------------------------------
    def _batches(self):
        loader = self.train_loader
        sampler = loader.sampler
        epoch = sampler.epoch
        set_data_epoch = getattr(loader.dataset, "set_epoch", None)  # data whose augmentation depends on the epoch
        while True:
            sampler.set_epoch(epoch)
            if callable(set_data_epoch):
                set_data_epoch(epoch)
            yield from loader
            epoch += 1

    def train(self) -> dict:
        """Run the steps left (each one logged; evaluations and checkpoints at their intervals) and end with a
        checkpoint of the last step. SIGTERM / SIGINT stop the loop at a step boundary with a checkpoint
        (`TrainingStopped`)."""
        plan, engine = self.plan, self.engine
        engine.train(True)
        batches = self._batches()
        units_per_step = plan.units_per_micro_batch * plan.grad_accum * self.state.dp_size
        rate_key = f"{plan.unit}_per_second"
        bar = tqdm(total=plan.total_steps, initial=self.step, disable=not (self.is_main and plan.progress),
                   desc="train", unit="step", dynamic_ncols=True)
        start_step, started = self.step, time.perf_counter()
        last_loss = float("nan")
        with StopOnSignal() as stop:
            while self.step < plan.total_steps:
                step_started = time.perf_counter()
                losses, parts = [], {}
                for _ in range(plan.grad_accum):
                    batch = to_device(next(batches), engine.device)
                    losses.append(engine.micro_step(batch).float().item())
                    for name, value in engine.last_loss_parts.items():
                        parts.setdefault(name, []).append(value)
                    self.consumed_micro_batches += 1
                self.step += 1
                self.units_seen += units_per_step
                last_loss = _mean_over(self.state.dp_group, sum(losses) / len(losses))
                elapsed = time.perf_counter() - step_started
                if self.step % plan.log_every == 0 or self.step == plan.total_steps:
                    # the loss's parts a model reports (e.g. a GAN's terms), averaged like the loss
                    shown = {name: _mean_over(self.state.dp_group, sum(values) / len(values))
                             for name, values in sorted(parts.items())}
                    self.metrics.write({"split": "train", "step": self.step, "loss": last_loss, **shown,
                                        "lr": engine.lr(), "grad_norm": engine.last_grad_norm,
                                        plan.unit: self.units_seen, rate_key: units_per_step / max(elapsed, 1e-9)})
                bar.set_postfix(loss=f"{last_loss:.4f}",
                                **{f"{plan.unit[:3]}_s": f"{units_per_step / max(elapsed, 1e-9):,.0f}"})
                bar.update(1)
                if plan.eval_every and self.step % plan.eval_every == 0:
                    self.evaluate()
                if plan.save_every and self.step % plan.save_every == 0:
                    self.save_checkpoint()
                signum = stop.requested()
                if signum is not None:
                    bar.close()
                    raise TrainingStopped(signum, self.step, self._checkpoint_of_this_step())
        bar.close()
        seconds = time.perf_counter() - started
        self._checkpoint_of_this_step()
        steps_run = self.step - start_step
        return {"steps": self.step, "steps_this_run": steps_run, "unit": plan.unit, plan.unit: self.units_seen,
                "seconds": seconds, rate_key: steps_run * units_per_step / max(seconds, 1e-9), "final_loss": last_loss}

    def _checkpoint_of_this_step(self) -> Path:
        if self.saved_step != self.step:
            return self.save_checkpoint()
        return self.run_dir / CHECKPOINTS / checkpoint_name(self.step)

    def final_evaluation(self) -> dict:
        """Evaluate the final weights (unless the last step just did) and return the eval_* fields of run_info."""
        if self.eval_loader is not None and (not self.plan.eval_every or self.step % self.plan.eval_every):
            self.evaluate()
        result = {"eval_loss": self.last_eval_loss}
        extra = {k: v for k, v in (getattr(self, "last_eval", None) or {}).items()
                 if k not in ("split", "step", "loss", "time")}
        result.update({f"eval_{k}": v for k, v in extra.items()})
        return result

    def summary(self, info: dict) -> str | None:
        memory = peak_memory_mib(self.engine.device)
        per_rank = [memory]
        if dist.is_available() and dist.is_initialized():
            per_rank = [None] * dist.get_world_size()
            dist.all_gather_object(per_rank, memory)
        info["peak_memory_mib"] = per_rank
        if self.is_main:
            (self.run_dir / "run_info.json").write_text(json.dumps(info, indent=2))
            if self.metrics.records:
                plot_loss_curve(self.metrics.records, self.run_dir / "loss_curve.png")
            return format_summary(info, per_rank)
        return None

