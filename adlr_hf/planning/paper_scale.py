"""The model card's "scaling" section: the published configuration planned (`make_plan`) at the layout its paper
trained at (`FamilySpec.paper_scale`), i.e. what training this model at the paper's scale would take per GPU.

The paper's GPU count and global batch are kept. Where the paper's TP degree does not fit the configuration (a small
published model has fewer heads), the largest divisor of it that fits is used, with DP and the micro-batch scaled to
keep both; a sequence length beyond the model's positions is cut to them. The section says when it did either.
"""

from __future__ import annotations

from .layout import resolve_layout
from .plan import check_model, make_plan
from .report import gib

_SCALE_TITLE = "## Scaling (computed)"


def _fitting_layout(config, name: str, scale):
    """(layout, notes) for the paper's layout, or the closest one that fits `config`."""
    world = scale.tp * scale.dp
    global_batch = scale.micro_batch_size * scale.grad_accum * scale.dp
    limit = getattr(config, "max_position_embeddings", None)
    seq_len = scale.seq_len if limit is None else min(scale.seq_len, limit)
    notes = [] if seq_len == scale.seq_len else [f"sequences of {seq_len} tokens (the model's positions), not the "
                                                 f"paper's {scale.seq_len}"]
    first_error = None
    for tp in (d for d in range(scale.tp, 0, -1) if scale.tp % d == 0):
        dp = world // tp
        if global_batch % (dp * scale.grad_accum):
            continue
        layout = resolve_layout(tp, dp, global_batch // (dp * scale.grad_accum), seq_len, scale.grad_accum,
                                None, scale.gpus_per_node, None, scale.activation_checkpointing)
        try:
            check_model(config, name, layout)
        except ValueError as err:
            first_error = first_error or err
            continue
        if tp != scale.tp:
            reason = str(first_error).rstrip(".")
            notes.append(f"TP={tp} instead of the paper's {scale.tp}, which this configuration does not allow "
                         f"({reason}); DP and the micro-batch are scaled to keep {world} GPUs and the global batch "
                         f"of {global_batch}")
        return layout, notes
    raise first_error


def plan_at_paper_scale(config, name: str, scale) -> tuple[dict, list[str]]:
    from ..training.engines import resolve_batch_config

    layout, notes = _fitting_layout(config, name, scale)
    ds_config = resolve_batch_config(scale.deepspeed_config(), layout.micro_batch_size, layout.grad_accum,
                                     layout.dp, 1.0)
    return make_plan(name, config, layout, ds_config, scale.gpu_memory_gib), notes


def _command(plan: dict, scale) -> str:
    layout = plan["layout"]
    words = ["adlr-hf plan --model MODEL_DIR", f"--tp {layout['tp']}", f"--dp {layout['dp']}",
             f"--micro-batch-size {layout['micro_batch_size']}", f"--grad-accum {layout['grad_accum']}",
             f"--seq-len {layout['seq_len']}", f"--deepspeed-config {scale.deepspeed_config_file}",
             f"--gpus-per-node {layout['gpus_per_node']}"]
    if layout["activation_checkpointing"]:
        words.append("--activation-checkpointing")
    if scale.gpu_memory_gib:
        words.append(f"--gpu-memory-gib {scale.gpu_memory_gib:g}")
    return " ".join(words)


def scaling_section(config, scale, name: str = "this model") -> list[str]:
    """Markdown lines of the section (the reason instead of the table where no plan can be made)."""
    lines = [_SCALE_TITLE, "", f"Computed by `adlr-hf plan` for this configuration, not measured: what training it at "
                               f"the paper's layout would take per GPU. {scale.source}".rstrip(), ""]
    try:
        plan, notes = plan_at_paper_scale(config, name, scale)
    except ValueError as err:
        return lines + [f"Not computed: {err}", ""]
    layout, training, flops = plan["layout"], plan["training"], plan["flops"]
    rank = plan["ranks"][0]
    mem, comm = rank["memory_bytes"], rank["communication_per_step"]
    acts = mem["activations"]
    ckpt = layout["activation_checkpointing"]
    used, other = ("checkpointed", "stored") if ckpt else ("stored", "checkpointed")
    fits = "" if rank["fits"] is None else \
        f" ({'fits' if rank['fits'] else 'does not fit'} in a {plan['gpu_memory_gib']:g} GiB GPU)"
    dp_ops = ", ".join(f"{c['op'].replace('_', '-')} of {c['what']} {gib(c['payload_bytes'])}"
                       for c in comm["dp"]["collectives"]) or "none"
    rows = [
        ("layout", f"TP={layout['tp']} × DP={layout['dp']} = {layout['world']} GPUs ({layout['nodes']} nodes × "
                   f"{layout['gpus_per_node']}); micro-batch {layout['micro_batch_size']} × accumulation "
                   f"{layout['grad_accum']} × DP {layout['dp']} = {layout['global_batch_size']:,} sequences of "
                   f"{layout['seq_len']:,} tokens"),
        ("training", f"ZeRO-{training['zero_stage']}, {training['precision']} weights"
                     + (", fp32 master weights" if training["master_copy"] else "") + f", {training['optimizer']}"
                     + (", activation checkpointing" if ckpt else "")),
        ("parameters", f"{rank['parameters']:,} of {plan['parameters']:,}"),
        ("weights / gradients / optimizer states", f"{gib(mem['parameters'])} / {gib(mem['gradients'])} / "
                                                   f"{gib(mem['optimizer'])}"),
        ("activations per micro-batch", f"{gib(acts['checkpointed' if ckpt else 'full'])} {used} "
                                        f"({gib(acts['full' if ckpt else 'checkpointed'])} {other})"),
        ("peak estimate", gib(mem["peak"]) + fits),
        ("FLOPs per step", f"{flops['model_flops_per_step']:.3g} (model FLOPs, Megatron's formula; "
                           f"{flops['model_flops_per_gpu']:.3g} per GPU)"),
        ("communicated per step", f"TP all-reduces {gib(comm['tp']['payload_bytes'])}; DP: {dp_ops} (payload per "
                                  "GPU)"),
    ]
    lines += ["| | per GPU |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    if notes:
        lines += ["Adjusted to this configuration: " + "; ".join(notes) + ".", ""]
    lines += ["Reproduce it with the published folder as `MODEL_DIR`:", "", f"```bash\n{_command(plan, scale)}\n```",
              ""]
    return lines
