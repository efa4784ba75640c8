"""Learning-rate schedules as torch LambdaLR: linear warm-up, then cosine / linear / poly decay to min_lr, or constant.

poly: (1 - progress) ** power, the segmentation references' schedule (NVIDIA/semantic-segmentation `--lr_schedule
poly --poly_exp 1.0`, DeepLab's 0.9); with power 1 it is the linear decay."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def lr_lambda(kind: str, total_steps: int, warmup_steps: int, lr: float, min_lr: float, power: float = 1.0):
    floor = min_lr / lr if lr > 0 else 0.0

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if kind == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif kind == "poly":
            decay = (1.0 - progress) ** power
        else:
            decay = 1.0 - progress
        return floor + (1.0 - floor) * decay

    return factor


def build_scheduler(optimizer, kind: str, total_steps: int, warmup_steps: int, lr: float, min_lr: float,
                    power: float = 1.0):
    return LambdaLR(optimizer, lr_lambda(kind, total_steps, warmup_steps, lr, min_lr, power))
