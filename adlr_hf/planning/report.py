"""The plan as a table (what `adlr-hf plan` prints) and as JSON (`--json`, `plan.json`)."""

from __future__ import annotations

import json

GIB = 2**30


def gib(value: float) -> str:
    """Bytes in the largest binary unit that keeps the number at or above 1 (KiB to TiB), two decimals."""
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f} B"


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(value) >= scale:
            return f"{value / scale:,.2f} {prefix}{unit}"
    return f"{value:,.0f} {unit}"


def to_json(plan: dict) -> str:
    return json.dumps(plan, indent=2)


def _rank_rows(rank: dict, plan: dict) -> list[tuple[str, str]]:
    mem, layout = rank["memory_bytes"], plan["layout"]
    acts = mem["activations"]
    tp, dp = rank["communication_per_step"]["tp"], rank["communication_per_step"]["dp"]
    ckpt = layout["activation_checkpointing"]
    rows = [
        ("parameters", f"{rank['parameters']:,} ({rank['parameters_split']:,} split over TP, "
                       f"{rank['parameters_replicated']:,} replicated)"
                       + (f"; vocabulary padded to {rank['padded_vocab']:,}" if rank["padded_vocab"] else "")),
        ("weights", gib(mem["parameters"])),
        ("gradients", gib(mem["gradients"])),
        ("optimizer states", f"{gib(mem['optimizer'])} (fp32 master {gib(mem['master_weights'])} + moments "
                             f"{gib(mem['optimizer_states'])})"),
        ("ZeRO buckets", gib(mem["zero_buffers"])),
        ("activations / micro-batch", f"{gib(acts['full'])} stored; {gib(acts['checkpointed'])} with activation "
                                      f"checkpointing ({gib(acts['per_layer'])} per layer)"),
        ("peak estimate", f"{gib(mem['peak'])} (activations {'checkpointed' if ckpt else 'stored'})"
                          + ("" if rank["fits"] is None else
                             f"; {'fits' if rank['fits'] else 'does NOT fit'} in {plan['gpu_memory_gib']:g} GiB")),
    ]
    if tp["payload_bytes"]:
        phases = tp["phases"]
        per_layer = ", ".join(f"{name} {gib(p['per_layer'])}" for name, p in phases.items() if p["calls"])
        outside = sum(p["outside_layers"] for p in phases.values())
        rows.append(("TP all-reduces / step", f"{gib(tp['payload_bytes'])} payload, {gib(tp['wire_bytes'])} sent "
                                              f"per rank; per layer and micro-batch: {per_layer}; outside the "
                                              f"layers {gib(outside)}"))
    else:
        rows.append(("TP all-reduces / step", "none (TP=1)"))
    if dp["collectives"]:
        what = "; ".join(f"{c['op']} of {c['what']} {gib(c['payload_bytes'])}" for c in dp["collectives"])
        rows.append(("DP / ZeRO / step", f"{gib(dp['payload_bytes'])} payload, {gib(dp['wire_bytes'])} sent per "
                                         f"rank ({what})"))
    else:
        rows.append(("DP / ZeRO / step", "none (DP=1)"))
    return rows


def render_table(plan: dict, launch: dict | None = None, folder: str | None = None) -> str:
    """The plan as aligned rows; `launch` adds the commands, which name the files written to `folder` (if any)."""
    layout, training, dims, flops = plan["layout"], plan["training"], plan["dims"], plan["flops"]
    head = [
        ("model", f"{plan['model']} ({plan['model_class']}): {plan['parameters']:,} parameters, "
                  f"{dims['num_layers']} layers, hidden {dims['hidden_size']}, {dims['num_attention_heads']} heads, "
                  f"vocabulary {dims['vocab_size']:,} (padded {dims['padded_vocab_size']:,})"),
        ("layout", f"TP {layout['tp']} × DP {layout['dp']} = {layout['world']} GPUs on {layout['nodes']} node(s) × "
                   f"{layout['gpus_per_node']}"),
        ("batch", f"micro-batch {layout['micro_batch_size']} × accumulation {layout['grad_accum']} × DP "
                  f"{layout['dp']} = {layout['global_batch_size']} sequences of {layout['seq_len']} tokens"),
        ("training", f"ZeRO-{training['zero_stage']}, {training['precision']}, {training['optimizer']}"
                     + (", activation checkpointing" if layout["activation_checkpointing"] else "")),
        ("FLOPs / step", f"{_si(flops['model_flops_per_step'], 'FLOP')} model "
                         f"({_si(flops['model_flops_per_gpu'], 'FLOP')} per GPU)"
                         + (f"; {_si(flops['hardware_flops_per_step'], 'FLOP')} with recomputation"
                            if layout["activation_checkpointing"] else "")),
    ]
    lines = [f"{k:<29}{v}" for k, v in head]
    for rank in plan["ranks"]:
        ranks = rank["tp_ranks"]
        label = f"per rank (TP ranks {ranks[0]}..{ranks[-1]})" if len(ranks) > 1 else f"per rank (TP rank {ranks[0]})"
        lines += ["", label] + [f"  {k:<27}{v}" for k, v in _rank_rows(rank, plan)]
    if plan.get("notes"):
        lines += ["", "notes"] + [f"  - {note}" for note in plan["notes"]]
    if launch:
        written = f"written to {folder}" if folder else "--out DIR writes them"
        lines += ["", f"launch (deepspeed; ds_config.json, hostfile and launch.sh: {written})",
                  f"  {launch['deepspeed']}", "launch (torchrun, on every node)", f"  {launch['torchrun']}"]
    return "\n".join(lines)
