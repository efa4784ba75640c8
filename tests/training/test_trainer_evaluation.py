"""Trainer.evaluate: an evaluation collator's own RNG restarts every evaluation, so the scores are comparable."""

from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

from adlr_hf.parallel import ParallelState
from adlr_hf.training.trainer import Trainer, TrainPlan


class RandomMaskCollate:
    """Stands in for MLMCollator: every batch draws its 'masks' from the collator's own generator."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, samples):
        return {"masked": torch.rand(len(samples), generator=self.generator)}


class StubEngine:
    device = torch.device("cpu")

    def __init__(self):
        self.training_flags = []

    def train(self, mode: bool):
        self.training_flags.append(mode)

    def module(self, masked):
        return SimpleNamespace(loss=masked.sum())


def test_every_evaluation_sees_the_same_collator_masks(tmp_path):
    state = ParallelState(world_size=1, rank=0, tp_size=1, tp_rank=0, dp_size=1, dp_rank=0, tp_group=None,
                          dp_group=None)
    plan = TrainPlan(total_steps=1, grad_accum=1, micro_batch_size=2, units_per_sample=1, unit="images", seq_len=0,
                     progress=False)
    collate = RandomMaskCollate(seed=7)
    loader = DataLoader(list(range(6)), batch_size=2, collate_fn=collate)
    engine = StubEngine()
    trainer = Trainer(engine, state, plan, train_loader=None, eval_loader=loader, run_dir=tmp_path)
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first == second
    expected = torch.rand(6, generator=torch.Generator().manual_seed(7)).view(3, 2).sum(1).mean().item()
    assert abs(first - expected) < 1e-6
    assert engine.training_flags == [False, True, False, True]
