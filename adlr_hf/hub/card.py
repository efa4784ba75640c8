"""The model card of a published folder: `huggingface_hub.ModelCard` with YAML metadata and a body built from the
family's `CardFacts`, the task's rows (training, systems, usage, limitations) and the recorded evaluations. The writer
is generic: what differs between families and tasks comes from their spec and their `Task`.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..atomic import write_text_atomically
from .format import fmt
from .model_index import README, eval_results_for, evaluation_section
from .source import LOSS_CURVE, looks_like_hub_id
from .systems import SYSTEMS_FILE

LIBRARY_TAG = "adlr_hf"
_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}\n"


def build_card_data(*, model_name: str, family, license: str | None, pipeline_tag: str | None,
                    model_type: str | None, datasets: list[str] | None, base_model: str | None,
                    records: list[dict]) -> ModelCardData:
    tags = [LIBRARY_TAG]
    if family is not None:
        tags += [family.slug, *[f"arxiv:{a}" for a in family.card.paper.arxiv], *family.card.tags]
    if model_type:
        tags.append(model_type)
    results = [r for record in records for r in eval_results_for(record)]
    return ModelCardData(library_name="transformers", license=license, tags=list(dict.fromkeys(tags)),
                         datasets=datasets or None, pipeline_tag=pipeline_tag, base_model=base_model or None,
                         model_name=model_name, eval_results=results or None,
                         metrics=sorted({r.metric_type for r in results}) or None)


def render_card(card_data: ModelCardData, body: str) -> ModelCard:
    return ModelCard.from_template(card_data, template_str=_TEMPLATE, body=body)


def save_card(card: ModelCard, folder) -> None:
    """Write README.md atomically (`card.save` into a temporary file, then a rename)."""
    path = Path(folder) / README
    text = str(card)
    write_text_atomically(path, text if text.endswith("\n") else text + "\n")


def append_card_section(folder, lines) -> None:
    """Append a section (lines of Markdown, or one string) at the end of a card, atomically: a benchmark's table
    measured beside the published model."""
    path = Path(folder) / README
    text = lines if isinstance(lines, str) else "\n".join(lines)
    write_text_atomically(path, path.read_text().rstrip("\n") + "\n" + text.rstrip("\n") + "\n")


def describe_data(entries) -> str:
    if not entries:
        return "n/a"
    out = []
    for entry in entries if isinstance(entries, list) else [entries]:
        entry = str(entry)
        if "default_corpus" in entry:
            out.append("adlr_hf's embedded default corpus (Python standard-library docstrings)")
        elif looks_like_hub_id(entry):
            out.append(f"[{entry}](https://huggingface.co/datasets/{entry})")
        else:
            out.append(f"`{Path(entry.split(':')[-1]).name}`")
    return ", ".join(out)


def _mib(values) -> str:
    if not values:
        return "n/a"
    values = values if isinstance(values, list) else [values]
    return ", ".join(f"rank {r}: {v:,.0f} MiB" for r, v in enumerate(values) if v is not None)


def family_section(family, model_type: str) -> list[str]:
    if family is None:
        return [f"A model of type `{model_type}` (no adlr_hf family is registered for this type).", ""]
    facts = family.card
    arxiv = ", ".join(f"[arXiv:{a}](https://arxiv.org/abs/{a})" for a in facts.paper.arxiv)
    repo = facts.paper.reference_repo
    lines = [f"**{facts.title}**: {facts.description}. From *{facts.paper.title}* ({arxiv}); reference "
             f"implementation [{repo.removeprefix('https://github.com/')}]({repo}). "
             "This is a Hugging Face `transformers` model built with adlr_hf, which reimplements NVIDIA ADLR's "
             "research models with Megatron tensor parallelism.", ""]
    if facts.intended_use:
        lines += [f"**Intended use.** {facts.intended_use}", ""]
    if facts.license_notes:
        lines += [f"**Licenses.** {facts.license_notes}", ""]
    return lines


def _training_section(training: dict | None, task, source_kind: str, base_hub, base_local,
                      has_loss_curve: bool) -> list[str]:
    lines = ["## Training", ""]
    if not training:
        return lines + ["Published from a model folder without a training record (no `run_info.json`).", ""]
    zero = training.get("zero_stage")
    precision = "bf16" if training.get("bf16") else "fp16" if training.get("fp16") else \
        training.get("mixed_precision") if training.get("mixed_precision") not in (None, "no") else "fp32"
    world = training.get("world_size", (training.get("tp") or 1) * (training.get("dp") or 1))
    unit = task.unit if task is not None else training.get("unit", "samples")
    sample = "sequences" if unit == "tokens" else unit
    rows = [
        ("task", training.get("task", "n/a")),
        ("engine", f"{training.get('engine', 'n/a')}" + (f", ZeRO stage {zero}" if zero is not None else "")),
        ("parallelism", f"TP={training.get('tp', 1)} × DP={training.get('dp', 1)} ({world} process"
                        + ("es)" if (world or 1) > 1 else ")")),
        ("precision", precision),
        ("data", describe_data(training.get("data"))),
        ("batch", f"{training.get('micro_batch_size')} per rank × {training.get('grad_accum', 1)} accumulation × "
                  f"DP {training.get('dp', 1)} = {training.get('global_batch_size', 'n/a')} {sample}"),
        ("steps", training.get("steps")),
        ("learning rate", training.get("lr")),
        ("loss (first → last step)", f"{fmt(training.get('initial_loss'))} → {fmt(training.get('final_loss'))}"),
        *(task.card_rows(training) if task is not None else []),
    ]
    if source_kind == "checkpoint":
        rows.append(("exported from", f"checkpoint at step {training.get('checkpoint_step')}"))
    if base_hub or base_local:
        rows.append(("fine-tuned from", f"[{base_hub}](https://huggingface.co/{base_hub})" if base_hub
                     else f"local folder `{Path(base_local).name}`"))
    lines += ["| | |", "|---|---|", *[f"| {k} | {v if v is not None else 'n/a'} |" for k, v in rows], ""]
    lines += ["Trained with `python -m adlr_hf.train` (one model-agnostic loop under DeepSpeed or Accelerate).", ""]
    if has_loss_curve:
        lines += [f"![training loss]({LOSS_CURVE})", ""]
    return lines


def _systems_section(systems: dict, task) -> list[str]:
    lines = ["## Systems", "", f"Measured by adlr_hf, not typed in (also in `{SYSTEMS_FILE}`).", "",
             "| | |", "|---|---|", f"| parameters | {systems['parameters']:,} |"]
    train = systems.get("training")
    rate = train.get(f"{train.get('unit')}_per_second") if train else None
    if rate is not None:
        lines.append(f"| training throughput | {rate:,.1f} {train['unit']}/s on "
                     f"{train.get('machine') or 'an unrecorded machine'} (TP={train.get('tp')} × DP={train.get('dp')}, "
                     f"{train.get('engine')}) |")
        lines.append(f"| training peak memory | {_mib(train.get('peak_memory_mib'))} "
                     "(GPU: max allocated; CPU: max resident set) |")
    if task is not None:
        lines += task.systems_rows(systems)
    return lines + [""]


def _scaling_section(config, family) -> list[str]:
    """The family's paper layout, planned for this configuration by `adlr-hf plan` (adlr_hf.planning), where the
    family declares one (`FamilySpec.paper_scale`)."""
    scale = getattr(family, "paper_scale", None)
    if scale is None:
        return []
    from ..planning.paper_scale import scaling_section

    return scaling_section(config, scale)


def card_body(*, title: str, model_id: str, config, family, task, auto_name: str, training: dict | None,
              systems: dict, records: list[dict], suggested: list[str], base_local: str | None,
              base_hub: str | None, has_loss_curve: bool, source_kind: str) -> str:
    lines = [f"# {title}", "", *family_section(family, config.model_type)]
    lines += ["## Model details", "", "| | |", "|---|---|",
              f"| architecture | `{auto_name}` → `{(getattr(config, 'architectures', None) or ['?'])[0]}` "
              f"(`{config.model_type}`) |",
              f"| parameters | {systems['parameters']:,} |"]
    layers = getattr(config, "num_layers", None) or getattr(config, "num_hidden_layers", None)
    if layers and getattr(config, "hidden_size", None):
        lines.append(f"| layers / hidden / heads | {layers} / {config.hidden_size} / "
                     f"{getattr(config, 'num_attention_heads', None) or 'n/a'} |")
    if getattr(config, "vocab_size", None):
        lines.append(f"| vocabulary | {config.vocab_size:,} |")
    if getattr(config, "max_position_embeddings", None):
        lines.append(f"| context length | {config.max_position_embeddings:,} tokens |")
    lines += [f"| weights | {systems['dtype']}, safetensors |", ""]
    lines += _training_section(training, task, source_kind, base_hub, base_local, has_loss_curve)
    lines += _systems_section(systems, task)
    lines += _scaling_section(config, family)
    lines += [evaluation_section(records, suggested), ""]
    snippet = task.usage_snippet(model_id) if task is not None else \
        f"```python\nfrom transformers import {auto_name}\n\nmodel = {auto_name}.from_pretrained({model_id!r}, " \
        "trust_remote_code=True)\n```"
    lines += ["## How to use", "",
              "The folder carries its modeling code, so it loads with `trust_remote_code=True` where adlr_hf is not "
              "installed; with adlr_hf installed (`import adlr_hf`) the flag is not needed.", "", snippet, ""]
    if getattr(config, "base_model_tp_plan", None):
        lines += ["With adlr_hf installed, the same folder loads tensor-parallel under `torchrun --nproc-per-node N`: "
                  f"`{auto_name}.from_pretrained(model_id, tp_size=N)` (checkpoints do not record the TP "
                  "degree; the weights are sharded on load).", ""]
    limits = list(family.card.limitations) if family is not None else []
    limits += task.limitations(training) if task is not None else []
    limits.append("Systems numbers depend on the machine named beside them and on its load at the time; compare "
                  "them only with numbers measured the same way.")
    lines += ["## Limitations", "", *[f"- {x}" for x in limits], ""]
    if family is not None:
        paper = family.card.paper
        lines += ["## Citation", "", f"{paper.title}, " + ", ".join(f"arXiv:{a}" for a in paper.arxiv) + ".", ""]
    return "\n".join(lines)


def minimal_card(model_dir: Path, config, family, task, suggested: list[str]) -> ModelCard:
    """A short card for a folder that has none (written by `record_evaluation`)."""
    data = build_card_data(model_name=model_dir.name, family=family, license=None,
                           pipeline_tag=task.pipeline_tag if task else None,
                           model_type=getattr(config, "model_type", None), datasets=None, base_model=None, records=[])
    what = (f"{family.card.title}, {family.card.description} ({family.card.paper.title}, "
            f"arXiv:{', '.join(family.card.paper.arxiv)})." if family else "An adlr_hf model.")
    body = (f"# {model_dir.name}\n\n{what}\n\nThis card was created by `record_evaluation`; "
            "`adlr-hf publish` writes the full card.\n\n" + evaluation_section([], suggested))
    return render_card(data, body)


__all__ = ["append_card_section", "build_card_data", "card_body", "describe_data", "minimal_card", "render_card",
           "save_card"]
