"""Bytes communicated per training step.

Tensor parallelism is *traced*: the rank's meta-device model (ranks.py) runs one forward and backward of a
micro-batch with every `torch.distributed` collective recorded and skipped (`collectives.py`), so the count is
what the family's own parallel layers do. For Megatron's layer (Shoeybi et al., arXiv 1909.08053, §3 and Figure 3)
that is two all-reduces of the [b, s, h] activation in the forward pass ("g" after the attention and MLP
row-parallel layers) and two in the backward pass ("f" before the column-parallel ones): 4·b·s·h elements per layer
per micro-batch, plus the recomputed forward's with activation recomputation (two per layer; one where dropout is
off, because torch's non-reentrant checkpoint stops recomputing once the saved tensors are back and the last
all-reduce feeds none of them). Outside the layers: the vocab-parallel embedding's forward all-reduce, the LM
head's backward all-reduce and the cross entropy's three [b·s] fp32 all-reduces. Collectives are attributed to a
layer (a module of a class in `_no_split_modules`) while its forward runs, and in backward from the moment its
output's gradient is ready until its input's is.

Data parallelism follows DeepSpeed 0.19.8 (runtime/engine.py, runtime/zero/stage_1_and_2.py, stage3.py), per
optimizer step, with Ψ this rank's parameters, in the config's communication dtype:
  ZeRO-0   all-reduce of the gradients (Ψ) once, at the end of the accumulation;
  ZeRO-1   the same reduction at the end of the accumulation (a multi-rank bucketed all-reduce by default,
           `reduce` to each partition's owner otherwise), then an all-gather of the updated weights (Ψ);
  ZeRO-2   the gradient reduction in every micro-step's backward, then the all-gather of the weights;
  ZeRO-3   per micro-step: all-gather of the weights for the forward and again for the backward (and for a
           recomputed forward), reduce-scatter of the gradients (ZeRO paper, arXiv 1910.02054, §7: 3Ψ).
"""

from __future__ import annotations

import contextlib
import inspect

import torch

from .collectives import CollectiveLog

LM_AUTO_CLASSES = ("AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModelForPreTraining")


def _block_classes(model) -> tuple[str, ...]:
    return tuple(getattr(model, "_no_split_modules", None) or ())


class _LayerTracker:
    """Which layer (index of a repeated block) and phase (forward / backward / recompute) a collective belongs to.

    Forward: the block's forward hooks. Backward: layer i from the moment the gradient of its output is ready until
    that of its input is (tensor hooks set in the forward). Recompute: inside the recompute context of
    `torch.utils.checkpoint` (`context_fn`), which is left also when the checkpoint stops a recomputation early."""

    def __init__(self, model):
        self.forward_layer: int | None = None
        self.backward_layer: int | None = None
        self.in_backward = False
        self.recomputing = 0
        names = _block_classes(model)
        self.blocks = [m for m in model.modules() if type(m).__name__ in names]
        self.handles = []
        for index, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._pre(index)))
            self.handles.append(block.register_forward_hook(self._post(index)))

    def _pre(self, index):
        def hook(module, args):
            if self.in_backward:
                return
            self.forward_layer = index
            hidden = next((a for a in args if isinstance(a, torch.Tensor) and a.requires_grad), None)
            if hidden is not None:  # its gradient is complete when this layer's backward has finished
                hidden.register_hook(self._leave(index))
        return hook

    def _post(self, index):
        def hook(module, args, output):
            if self.in_backward:
                return
            self.forward_layer = None
            first = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(first, torch.Tensor) and first.requires_grad:  # ready: this layer's backward begins
                first.register_hook(self._enter(index))
        return hook

    def _enter(self, index):
        def hook(grad):
            self.backward_layer = index
        return hook

    def _leave(self, index):
        def hook(grad):
            if self.backward_layer == index:
                self.backward_layer = None
        return hook

    @contextlib.contextmanager
    def recompute(self):
        self.recomputing += 1
        try:
            yield
        finally:
            self.recomputing -= 1

    def context_fn(self):
        """`context_fn` of the checkpoint: the model's own contexts (its TP dropout stream), the recompute marked."""
        from ..parallel.random import checkpoint_rng_contexts

        forward, recompute = checkpoint_rng_contexts()
        return forward, _Both(recompute, self.recompute())

    def tag(self) -> tuple:
        if not self.in_backward:
            return ("forward", self.forward_layer)
        return ("recompute" if self.recomputing else "backward", self.backward_layer)

    def remove(self):
        for handle in self.handles:
            handle.remove()


class _Both:
    """Two context managers entered together (the checkpoint's recompute context)."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __enter__(self):
        self.first.__enter__()
        self.second.__enter__()

    def __exit__(self, *exc):
        self.second.__exit__(*exc)
        return self.first.__exit__(*exc)


def trace_batch(model, batch: int, seq_len: int, with_labels: bool) -> dict:
    ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
    accepted = inspect.signature(model.forward).parameters
    inputs = {"input_ids": ids}
    if with_labels and "labels" in accepted:
        inputs["labels"] = ids
    if "use_cache" in accepted:
        inputs["use_cache"] = False
    return inputs


def trace_tp_collectives(model, batch: int, seq_len: int, dtype: torch.dtype, activation_checkpointing: bool,
                         with_labels: bool) -> dict:
    """Record the collectives of one micro-batch's forward and backward on the meta device. Returns bytes by phase
    (forward / backward / recompute), split into `per_layer` (mean over the layers) and `outside_layers`."""
    model = model.to(dtype).train()
    tracker = _LayerTracker(model)
    if activation_checkpointing:
        model.activation_checkpointing_enable({"context_fn": tracker.context_fn})
    log = CollectiveLog(trace=True).install()
    log.tagger = tracker.tag
    try:
        with log.recording():
            out = model(**trace_batch(model, batch, seq_len, with_labels))
            loss = out.get("loss") if hasattr(out, "get") else None
            if loss is None:
                values = out.values() if hasattr(out, "values") else out
                loss = sum(v.float().sum() for v in values if isinstance(v, torch.Tensor) and v.requires_grad)
            tracker.in_backward = True
            loss.backward()
    finally:
        log.uninstall()
        tracker.remove()
    layers = max(len(tracker.blocks), 1)
    phases = {}
    for phase in ("forward", "backward", "recompute"):
        records = [r for r in log.records if r.tag[0] == phase]
        in_layers = [r for r in records if r.tag[1] is not None]
        phases[phase] = {
            "per_layer": sum(r.payload_bytes for r in in_layers) / layers,
            "outside_layers": sum(r.payload_bytes for r in records if r.tag[1] is None),
            "calls": len(records),
        }
    total = sum(r.payload_bytes for r in log.records)
    wire = sum(r.wire_bytes for r in log.records)  # the fake world is the TP group
    return {"layers": len(tracker.blocks), "phases": phases, "payload_bytes": total, "wire_bytes": wire,
            "ops": sorted({r.op for r in log.records})}


def dp_collectives(params: int, setup, dp: int, grad_accum: int, activation_checkpointing: bool) -> dict:
    """Payload and wire bytes per optimizer step of the data-parallel reduction and ZeRO's collectives, on one rank."""
    from .collectives import wire_factor

    grads = params * setup.comm_bytes
    weights = params * setup.param_bytes
    stage, ops = setup.zero_stage, []
    if dp > 1:
        if stage == 0:
            ops.append(("all_reduce", "gradients", grads))
        elif stage in (1, 2):
            reduce_op = "all_reduce" if setup.multi_rank_allreduce else "reduce"
            times = grad_accum if stage == 2 else 1
            ops.append((reduce_op, "gradients" + (f" (every micro-step, ×{times})" if times > 1 else ""),
                        grads * times))
            ops.append(("all_gather", "updated weights", weights))
        else:
            gathers = 3 if activation_checkpointing else 2
            ops.append(("all_gather", f"weights (×{gathers} per micro-step)", weights * gathers * grad_accum))
            ops.append(("reduce_scatter", "gradients (every micro-step)", grads * grad_accum))
    rows = [{"op": op, "what": what, "payload_bytes": payload, "wire_bytes": payload * wire_factor(op, dp)}
            for op, what, payload in ops]
    return {"collectives": rows, "payload_bytes": sum(r["payload_bytes"] for r in rows),
            "wire_bytes": sum(r["wire_bytes"] for r in rows)}
