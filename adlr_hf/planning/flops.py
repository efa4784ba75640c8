"""FLOPs of one training step, Megatron's formula (Narayanan et al., "Efficient Large-Scale Language Model Training
on GPU Clusters Using Megatron-LM", arXiv 2104.04473, §5.1 eq. 3; `adlr_hf.hub.systems.megatron_flops_per_iteration`).

For a global batch of B sequences of s tokens, l layers, hidden size h and vocabulary V (padded, as Megatron counts
it): model FLOPs (forward + backward = 3 × forward) F = 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)); with full activation
recomputation the hardware runs one more forward of the layers, 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)). Model FLOPs
are the ones to divide by time and peak for MFU.
"""

from __future__ import annotations

from ..hub.systems import megatron_flops_per_iteration


def hardware_flops_with_recompute(batch: int, s: int, layers: int, h: int, vocab: int) -> float:
    return 96.0 * batch * s * layers * h**2 * (1.0 + s / (6.0 * h) + vocab / (16.0 * layers * h))


def step_flops(global_batch: int, s: int, layers: int, h: int, vocab: int, gpus: int, recompute: bool) -> dict:
    model = megatron_flops_per_iteration(global_batch, s, layers, h, vocab)
    hardware = hardware_flops_with_recompute(global_batch, s, layers, h, vocab) if recompute else model
    return {"model_flops_per_step": model, "hardware_flops_per_step": hardware,
            "model_flops_per_gpu": model / gpus, "hardware_flops_per_gpu": hardware / gpus,
            "formula": "72*B*s*l*h^2*(1 + s/(6h) + V/(12*l*h)) (Narayanan et al. 2021, eq. 3)"
                       + ("; with recompute 96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h))" if recompute else "")}
