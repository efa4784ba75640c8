"""`adlr-hf publish RUN_OR_CHECKPOINT OUT_DIR`: a folder laid out as a Hub model repository, written atomically.

The folder holds what `save_pretrained` writes (config.json with `auto_map`, model.safetensors or shards with
model.safetensors.index.json, generation_config.json, the configuration/modeling .py files for
`trust_remote_code=True`), the tokenizer, a copy of the run's loss curve, `README.md` (the model card, see card.py),
`adlr_hf_systems.json` (the systems numbers, and the marker that the folder is a publish) and `adlr_hf_evals.json`.

Everything is written into a hidden temporary sibling of OUT_DIR and renamed over it at the end, so a failure leaves a
previous publish untouched and no temporary folder behind. A non-empty OUT_DIR that is not a previous publish is
refused unless `force=True`. A previous publish keeps its recorded evaluations when the new weights are the same.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import card as _card
from . import systems as _systems
from .systems import SYSTEMS_FILE

logger = logging.getLogger(__name__)

LOSS_CURVE = "loss_curve.png"
RUN_INFO = "run_info.json"
METRICS = "metrics.jsonl"
_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
SNIPPET_PROMPT = "The quick brown fox"
# The head decides the Hub pipeline tag (a GPT family model with a classification head is not text-generation).
PIPELINE_BY_AUTO_CLASS = {
    "AutoModelForCausalLM": "text-generation",
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForMaskedLM": "fill-mask",
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForSemanticSegmentation": "image-segmentation",
}


class PushUnavailable(RuntimeError):
    """The folder was published locally but could not be pushed (no token, offline, no --repo-id, hub error)."""


# -- the source ------------------------------------------------------------------------------------------------------
@dataclass
class Source:
    kind: str  # "run" | "model" | "checkpoint"
    path: Path
    model_dir: Path | None = None  # an HF folder (None for a checkpoint until exported)
    checkpoint_dir: Path | None = None
    run_dir: Path | None = None
    run_info: dict | None = None
    trainer_state: dict | None = None
    metrics: list[dict] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or delete it.") from None


def _read_metrics(run_dir: Path | None) -> list[dict]:
    path = run_dir / METRICS if run_dir is not None else None
    if path is None or not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a half-written last line of a killed run
    return records


def resolve_source(path) -> Source:
    """A run folder (RUN/model + run_info.json + metrics), an HF model folder, or a checkpoint
    RUN/checkpoints/step_N."""
    from ..training.checkpoint import CHECKPOINTS, TRAINER_STATE
    from ..training.export import run_dir_of

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist; pass a run folder (adlr-hf train --out), a model folder "
                                "with config.json, or a checkpoint folder RUN/checkpoints/step_N.")
    if not p.is_dir():
        raise ValueError(f"{str(p)!r} is a file; pass a run, model or checkpoint folder.")
    if (p / TRAINER_STATE).is_file():
        run_dir = run_dir_of(p)
        src = Source("checkpoint", p, checkpoint_dir=p, run_dir=run_dir, trainer_state=_read_json(p / TRAINER_STATE))
    elif (p / "config.json").is_file():
        run_dir = p.parent if p.name == "model" and (p.parent / RUN_INFO).is_file() else None
        src = Source("run" if run_dir else "model", p, model_dir=p, run_dir=run_dir)
    elif (p / RUN_INFO).is_file() or (p / CHECKPOINTS).is_dir():
        if (p / "model" / "config.json").is_file():
            src = Source("run", p, model_dir=p / "model", run_dir=p)
        else:
            checkpoints = sorted((p / CHECKPOINTS).glob(f"step_*/{TRAINER_STATE}")) if (p / CHECKPOINTS).is_dir() \
                else []
            if not checkpoints:
                raise ValueError(f"run folder {str(p)!r} has neither an exported model (model/config.json) nor a "
                                 f"checkpoint ({CHECKPOINTS}/step_N); train without --no-export or with --save-every.")
            ckpt = checkpoints[-1].parent
            logger.info("%s has no model/ folder; publishing its latest checkpoint %s", p, ckpt.name)
            src = Source("checkpoint", ckpt, checkpoint_dir=ckpt, run_dir=p,
                         trainer_state=_read_json(ckpt / TRAINER_STATE))
    else:
        raise ValueError(f"{str(p)!r} is not a run folder (run_info.json), a model folder (config.json) or a "
                         f"checkpoint ({TRAINER_STATE}); pass one of those.")
    if src.run_dir is not None and (src.run_dir / RUN_INFO).is_file():
        src.run_info = _read_json(src.run_dir / RUN_INFO)
    src.metrics = _read_metrics(src.run_dir)
    return src


# -- checks made before anything is written --------------------------------------------------------------------------
def is_previous_publish(folder: Path) -> bool:
    return (folder / SYSTEMS_FILE).is_file()


def _check_out_dir(out_dir: Path, source: Source, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR {str(out_dir)!r} is a file; choose a folder path.")
    out_r = out_dir.resolve()
    read = [p.resolve() for p in (source.path, source.model_dir, source.run_dir, source.checkpoint_dir) if p]
    weights = [p.resolve() for p in (source.model_dir, source.checkpoint_dir) if p]
    for other in read:  # replacing OUT_DIR must not remove what the publish reads ...
        if out_r == other or out_r in other.parents:
            raise ValueError(f"OUT_DIR {str(out_dir)!r} is or contains the source {str(other)!r}; publishing would "
                             "replace the files it reads. Choose a separate folder.")
    for other in weights:  # ... nor write into a model or checkpoint folder (a run folder may hold publishes)
        if other in out_r.parents:
            raise ValueError(f"OUT_DIR {str(out_dir)!r} lies inside the source {str(other)!r}; choose a folder "
                             "outside it.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_previous_publish(out_dir) and not force:
        raise ValueError(f"OUT_DIR {str(out_dir)!r} is not empty and is not a previous publish (no {SYSTEMS_FILE}); "
                         "pass --force to replace it, or choose another folder.")


def _check_options(repo_id: str | None, max_shard_size, license: str) -> None:
    if repo_id is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(repo_id)
        except HFValidationError as err:
            raise ValueError(f"--repo-id {repo_id!r} is not a Hub repository id ({err}); write ORG/NAME.") from None
        if "/" not in repo_id:
            raise ValueError(f"--repo-id {repo_id!r} has no namespace; write ORG/NAME (e.g. nvidia/{repo_id}).")
    if not isinstance(max_shard_size, int):
        from huggingface_hub.serialization._base import parse_size_to_int

        try:
            size = parse_size_to_int(str(max_shard_size))
        except (ValueError, TypeError):
            raise ValueError(f"--max-shard-size {max_shard_size!r} is not a size; write e.g. 5GB, 500MB or 100KB."
                             ) from None
    else:
        size = max_shard_size
    if size <= 0:
        raise ValueError(f"--max-shard-size {max_shard_size!r} must be positive.")
    if not isinstance(license, str) or not _LICENSE.match(license):
        raise ValueError(f"--license {license!r} is not a Hub license id; write e.g. apache-2.0, mit, cc-by-4.0 or "
                         "other.")


# -- what the card says about the run --------------------------------------------------------------------------------
def _looks_like_hub_id(name) -> bool:
    if not isinstance(name, str) or name.count("/") != 1 or Path(name).exists() or name.startswith((".", "/")):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _start_model(training: dict | None) -> tuple[str | None, str | None]:
    """(Hub id of the model the run started from, its local path) when the run fine-tuned an existing model."""
    if not training:
        return None, None
    start = training.get("model")
    if not isinstance(start, str):
        return None, None
    path = Path(start)
    if path.is_dir():
        hub_id = None
        if (path / SYSTEMS_FILE).is_file():
            hub_id = _read_json(path / SYSTEMS_FILE).get("repo_id")
        return hub_id, str(path)
    if _looks_like_hub_id(start):
        return start, None
    return None, None


def _describe_data(entries) -> str:
    if not entries:
        return "n/a"
    out = []
    for entry in entries if isinstance(entries, list) else [entries]:
        entry = str(entry)
        if "default_corpus" in entry:
            out.append("adlr_hf's embedded default corpus (Python standard-library docstrings)")
        elif _looks_like_hub_id(entry):
            out.append(f"[{entry}](https://huggingface.co/datasets/{entry})")
        else:
            out.append(f"`{Path(entry).name}`")
    return ", ".join(out)


def _training_summary(source: Source) -> dict | None:
    """The run's settings and results; for a checkpoint, its own step and token count."""
    info = dict(source.run_info or {})
    state = source.trainer_state or {}
    if not info and not state:
        return None
    for key in ("model", "engine", "zero_stage", "tp", "dp", "world_size", "data", "seq_len", "micro_batch_size",
                "grad_accum", "seed", "bf16", "fp16", "mixed_precision"):
        if key not in info and key in state:
            info[key] = state[key]
    train = [r for r in source.metrics if r.get("split") == "train"]
    evals = [r for r in source.metrics if r.get("split") == "eval"]
    if source.kind == "checkpoint" and state:
        info["steps"] = state.get("step")
        info[state.get("unit", "tokens")] = state.get("units_seen")
        train = [r for r in train if r.get("step", 0) <= state.get("step", 0)]
        evals = [r for r in evals if r.get("step", 0) <= state.get("step", 0)]
        info["final_loss"] = train[-1]["loss"] if train else None
        info["eval_loss"] = evals[-1]["loss"] if evals else None
        info["checkpoint_step"] = state.get("step")
    if train:
        info["initial_loss"] = train[0]["loss"]
    if info.get("micro_batch_size") and info.get("dp"):
        info["global_batch_size"] = info["micro_batch_size"] * info.get("grad_accum", 1) * info["dp"]
    return info


# -- writing the folder ----------------------------------------------------------------------------------------------
def _write_model(model, tokenizer, tmp: Path, max_shard_size) -> None:
    model.save_pretrained(tmp, max_shard_size=max_shard_size)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)


def _write_extras(tmp: Path, source: Source, systems: dict, records: list[dict]) -> None:
    if source.run_dir is not None and (source.run_dir / LOSS_CURVE).is_file():
        shutil.copy2(source.run_dir / LOSS_CURVE, tmp / LOSS_CURVE)
    (tmp / SYSTEMS_FILE).write_text(json.dumps(systems, indent=2) + "\n")
    _card.write_eval_records(tmp, records)


def _write_card(card, tmp: Path) -> None:
    _card.save_card(card, tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover_stale(out_dir: Path) -> None:
    """Folders left by a publish that was killed (not just interrupted by an exception): temporary ones are removed;
    a previous publish moved aside just before the kill is moved back when OUT_DIR is missing."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(publishing|replaced|export)-(\d+)-[0-9a-f]{{8}}$")
    if not out_dir.parent.is_dir():
        return
    for path in sorted(out_dir.parent.iterdir()):
        match = pattern.match(path.name)
        if not match or _pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "replaced" and not out_dir.exists() and is_previous_publish(path):
            logger.warning("restoring %s from %s (left by a killed publish)", out_dir, path.name)
            os.replace(path, out_dir)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _swap_into_place(tmp: Path, out_dir: Path, old: Path) -> None:
    if out_dir.exists():
        os.replace(out_dir, old)
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old, out_dir)
            raise
    else:
        os.replace(tmp, out_dir)


# -- card body -------------------------------------------------------------------------------------------------------
def _usage_snippets(model_id: str, auto_name: str, pipeline_tag: str | None) -> str:
    if pipeline_tag == "text-generation":
        return f"""```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model_id = {model_id!r}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id, trust_remote_code=True)
inputs = tokenizer({SNIPPET_PROMPT!r}, return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(tokenizer.decode(output[0], skip_special_tokens=True))
```

```python
from transformers import pipeline

generator = pipeline("text-generation", model={model_id!r}, trust_remote_code=True)
print(generator({SNIPPET_PROMPT!r}, max_new_tokens=20, do_sample=False)[0]["generated_text"])
```"""
    return f"""```python
from transformers import {auto_name}

model = {auto_name}.from_pretrained({model_id!r}, trust_remote_code=True)
print(type(model).__name__, sum(p.numel() for p in model.parameters()))
```"""


def _mib(values) -> str:
    if not values:
        return "n/a"
    values = values if isinstance(values, list) else [values]
    return ", ".join(f"rank {r}: {v:,.0f} MiB" for r, v in enumerate(values) if v is not None)


def _card_body(*, title: str, model_id: str, config, family, auto_name: str, pipeline_tag: str | None,
               training: dict | None, systems: dict, records: list[dict], base_local: str | None,
               base_hub: str | None, has_loss_curve: bool, source: Source) -> str:
    dims = _systems.transformer_dims(config) or {}
    lines = [f"# {title}", ""]
    if family is not None:
        arxiv = ", ".join(f"[arXiv:{a}](https://arxiv.org/abs/{a})" for a in family.arxiv)
        lines += [f"**{family.name}**: {family.description}. From *{family.paper_title}* ({arxiv}); reference "
                  f"implementation [{family.reference_repo.removeprefix('https://github.com/')}]"
                  f"({family.reference_repo}). This is a Hugging Face `transformers` model built with "
                  "adlr_hf, which reimplements NVIDIA ADLR's research models with Megatron tensor parallelism.", ""]
    else:
        lines += [f"An adlr_hf model of type `{config.model_type}` (no family facts are registered for this type in "
                  "`adlr_hf/hub/card.py`).", ""]
    lines += ["## Model details", "", "| | |", "|---|---|", f"| architecture | `{auto_name}` → "
              f"`{(getattr(config, 'architectures', None) or ['?'])[0]}` (`{config.model_type}`) |",
              f"| parameters | {systems['parameters']:,} |"]
    if dims:
        heads = getattr(config, "num_attention_heads", None)
        lines += [f"| layers / hidden / heads | {dims['num_layers']} / {dims['hidden_size']} / {heads or 'n/a'} |",
                  f"| vocabulary | {dims['vocab_size']:,} |"]
    if getattr(config, "max_position_embeddings", None):
        lines.append(f"| context length | {config.max_position_embeddings:,} tokens |")
    lines.append(f"| weights | {systems['dtype']}, safetensors |")
    lines.append("")

    lines += ["## Training", ""]
    if training:
        zero = training.get("zero_stage")
        images = training.get("unit") == "images"  # an image classifier's run counts images, not tokens
        precision = "bf16" if training.get("bf16") else "fp16" if training.get("fp16") else \
            training.get("mixed_precision") if training.get("mixed_precision") not in (None, "no") else "fp32"
        rows = [
            ("engine", f"{training.get('engine', 'n/a')}" + (f", ZeRO stage {zero}" if zero is not None else "")),
            ("parallelism", f"TP={training.get('tp', 1)} × DP={training.get('dp', 1)} "
                            f"({training.get('world_size', (training.get('tp') or 1) * (training.get('dp') or 1))} "
                            "process" + ("es)" if (training.get("world_size") or 1) > 1 else ")")),
            ("precision", precision),
            ("data", _describe_data(training.get("data"))),
            *([] if images else [("sequence length", training.get("seq_len"))]),
            ("batch", f"{training.get('micro_batch_size')} per rank × {training.get('grad_accum', 1)} accumulation × "
                      f"DP {training.get('dp', 1)} = {training.get('global_batch_size', 'n/a')} "
                      + ("images" if images else "sequences")),
            ("steps", training.get("steps")),
            ("images", _fmt_int(training.get("images"))) if images else ("tokens", _fmt_int(training.get("tokens"))),
            ("learning rate", training.get("lr")),
            ("loss (first → last step)",
             f"{_fmt(training.get('initial_loss'))} → {_fmt(training.get('final_loss'))}"),
        ]
        if images and training.get("eval_loss") is not None:
            rows.append(("held-out loss / top-1 accuracy",
                         f"{_fmt(training['eval_loss'])} / {_fmt(training.get('eval_accuracy'))}"))
        elif training.get("eval_loss") is not None:
            import math

            rows.append(("held-out loss (perplexity)",
                         f"{_fmt(training['eval_loss'])} ({_fmt(math.exp(min(20.0, training['eval_loss'])))})"))
        if source.kind == "checkpoint":
            rows.append(("exported from", f"checkpoint at step {training.get('checkpoint_step')}"))
        if base_hub or base_local:
            rows.append(("fine-tuned from", f"[{base_hub}](https://huggingface.co/{base_hub})" if base_hub
                         else f"local folder `{base_local}`"))
        lines += ["| | |", "|---|---|", *[f"| {k} | {v if v is not None else 'n/a'} |" for k, v in rows], ""]
        lines += ["Trained with `python -m adlr_hf.train` (one model-agnostic loop under DeepSpeed or Accelerate).",
                  ""]
        if has_loss_curve:
            lines += [f"![training loss]({LOSS_CURVE})", ""]
    else:
        lines += ["Published from a model folder without a training record (no `run_info.json`).", ""]

    lines += ["## Systems", "", f"Measured by adlr_hf, not typed in (also in `{SYSTEMS_FILE}`).", "",
              "| | |", "|---|---|", f"| parameters | {systems['parameters']:,} |"]
    flops = systems.get("flops")
    if flops:
        lines += [f"| training FLOPs per token (s={flops['seq_len']}) | {_fmt(flops['training_flops_per_token'])} "
                  "(Megatron: 72·l·h²·(1 + s/6h + V/12lh), forward + backward) |",
                  f"| inference FLOPs per token | {_fmt(flops['inference_flops_per_token'])} (one forward: a third) |"]
    train_sys = systems.get("training")
    if train_sys and train_sys.get("tokens_per_second") is not None:
        lines.append(f"| training throughput | {train_sys['tokens_per_second']:,.1f} tokens/s on "
                     f"{train_sys.get('machine', 'an unrecorded machine')} (TP={train_sys.get('tp')} × "
                     f"DP={train_sys.get('dp')}) |")
        if train_sys.get("model_flops_per_second") is not None:
            lines.append(f"| training model FLOP/s | {_fmt(train_sys['model_flops_per_second'])} |")
        lines.append(f"| training peak memory | {_mib(train_sys.get('peak_memory_mib'))} "
                     "(GPU: max allocated; CPU: max resident set) |")
    inf = systems.get("inference")
    if inf:
        lines.append(f"| inference throughput | {inf['tokens_per_second']:,.1f} tokens/s ({inf['decoding']}, batch "
                     f"{inf['batch_size']}, {inf['new_tokens']} new tokens after a {inf['prompt_tokens']}-token "
                     f"prompt, median of {inf['runs']}, {inf['dtype']}) on {inf['machine']} |")
    if systems.get("image"):
        lines += _systems.image_card_rows(systems["image"])
    lines.append("")

    lines += [_card.evaluation_section(records), ""]

    lines += ["## How to use", "",
              "The folder carries its modeling code, so it loads with `trust_remote_code=True` where adlr_hf is not "
              "installed; with adlr_hf installed (`import adlr_hf`) the flag is not needed.", "",
              _usage_snippets(model_id, auto_name, pipeline_tag), ""]
    if family is not None and "tensor-parallelism" in family.tags:
        lines += ["With adlr_hf installed, the same folder loads tensor-parallel under `torchrun --nproc-per-node N`: "
                  f"`{auto_name}.from_pretrained(model_id, tp_size=N)` (checkpoints do not record the TP "
                  "degree; the weights are sharded on load).", ""]

    lines += ["## Limitations", ""]
    limits = list(family.limitations) if family is not None else []
    if training and training.get("unit") == "images":
        limits.append(f"It saw only {_fmt_int(training.get('images'))} training images: it is a small-scale "
                      "reproduction or a demo, not the paper's ImageNet model.")
    elif training and (training.get("tokens") or 0) < 10**9:
        limits.append(f"It saw only {_fmt_int(training.get('tokens'))} training tokens: it is a small-scale "
                      "reproduction or a demo, not the paper's model, and its outputs are not useful text.")
    limits.append("Systems numbers depend on the machine named beside them and on its load at the time; compare "
                  "them only with numbers measured the same way.")
    lines += [f"- {x}" for x in limits] + [""]
    if family is not None:
        lines += ["## Citation", "", f"{family.paper_title}, " + ", ".join(f"arXiv:{a}" for a in family.arxiv) + ".",
                  ""]
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None else _card._fmt_num(float(x))


def _fmt_int(x) -> str:
    return "n/a" if x is None else f"{int(x):,}"


# -- publish ---------------------------------------------------------------------------------------------------------
def publish(source, out_dir, *, repo_id: str | None = None, max_shard_size="5GB", license: str = "apache-2.0",
            force: bool = False, measure_inference: bool = True, inference_runs: int = 3) -> Path:
    """Write the Hub-layout folder for `source` (run, model or checkpoint folder) at `out_dir`; returns `out_dir`."""
    import adlr_hf  # noqa: F401 - registers the families, so save_pretrained copies their code and auto_map

    out_dir = Path(out_dir)
    _recover_stale(out_dir)
    src = resolve_source(source)
    _check_options(repo_id, max_shard_size, license)
    _check_out_dir(out_dir, src, force)
    previous = out_dir.is_dir() and is_previous_publish(out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / f".{out_dir.name}.publishing-{tag}"
    old = out_dir.parent / f".{out_dir.name}.replaced-{tag}"
    export_tmp = out_dir.parent / f".{out_dir.name}.export-{tag}"
    try:
        tmp.mkdir()
        model_dir = src.model_dir
        if src.kind == "checkpoint":
            from ..training.export import export_checkpoint

            config_dir = None
            if src.run_dir is not None:
                config_dir = next((d for d in (src.run_dir / "model", src.run_dir / "tokenizer") if d.is_dir()), None)
            model_dir = export_checkpoint(src.checkpoint_dir, export_tmp, config_dir)
        _publish_into(tmp, out_dir, src, model_dir, repo_id=repo_id, max_shard_size=max_shard_size,
                      license=license, previous=previous, measure_inference=measure_inference,
                      inference_runs=inference_runs)
        _swap_into_place(tmp, out_dir, old)
    finally:
        for path in (tmp, old, export_tmp):
            shutil.rmtree(path, ignore_errors=True)
    logger.info("published %s -> %s", src.path, out_dir)
    return out_dir


def _publish_into(tmp: Path, out_dir: Path, src: Source, model_dir: Path, *, repo_id, max_shard_size, license,
                  previous: bool, measure_inference: bool, inference_runs: int) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from ..training.export import auto_class_for

    config = AutoConfig.from_pretrained(model_dir)
    auto = auto_class_for(config)
    model = auto.from_pretrained(model_dir, dtype="auto").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir) if (model_dir / "tokenizer_config.json").is_file() else None
    family = _card.family_for(config.model_type)
    pipeline_tag = PIPELINE_BY_AUTO_CLASS.get(auto.__name__) or (family.pipeline_tag if family is not None else None)

    _write_model(model, tokenizer, tmp, max_shard_size)
    if (model_dir / "preprocessor_config.json").is_file():  # an image processor: pipelines need it beside the model
        shutil.copy2(model_dir / "preprocessor_config.json", tmp / "preprocessor_config.json")
    fingerprint = _card.weights_fingerprint(tmp)

    training = _training_summary(src)
    flops = _systems.flops_per_token(config, (training or {}).get("seq_len"))
    systems = {
        "format": 1, "adlr_hf_version": _version(), "published_at": _now(), "repo_id": repo_id,
        "source": {"kind": src.kind, "name": src.path.resolve().name}, "model_type": config.model_type,
        "weights_sha256": fingerprint, "parameters": _systems.count_parameters(model),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "flops": flops,
        "training": None, "inference": None,
    }
    if training and training.get("tokens_per_second") is not None:
        systems["training"] = {
            "tokens_per_second": training["tokens_per_second"], "seconds": training.get("seconds"),
            "peak_memory_mib": training.get("peak_memory_mib"), "machine": training.get("machine"),
            "tp": training.get("tp"), "dp": training.get("dp"), "engine": training.get("engine"),
            "zero_stage": training.get("zero_stage"), "source": RUN_INFO,
            "model_flops_per_second": (training["tokens_per_second"] * flops["training_flops_per_token"]
                                       if flops else None),
        }
    if measure_inference and tokenizer is not None and pipeline_tag == "text-generation" and model.can_generate():
        systems["inference"] = _systems.measure_inference_throughput(model, tokenizer, runs=inference_runs)
    if pipeline_tag == "image-classification":  # FLOPs per image counted, images/s recorded and measured
        systems["image"] = _systems.image_systems(model, training, measure_inference, inference_runs)

    # Evaluations: those recorded on the source folder and on a previous publish, when the weights are the same.
    kept = [r for r in _card.read_eval_records(model_dir) if r.get("weights_sha256") in (None, fingerprint)]
    if previous:
        prior = _card.read_eval_records(out_dir)
        same = [r for r in prior if r.get("weights_sha256") == fingerprint]
        if len(same) < len(prior):
            logger.info("dropping %d evaluation(s) of %s: they were recorded on other weights", len(prior) - len(same),
                        out_dir)
        kept = _card.merge_eval_records(same, kept)
    for record in kept:
        record.setdefault("weights_sha256", fingerprint)
    _write_extras(tmp, src, systems, kept)

    base_hub, base_local = _start_model(training)
    datasets = [d for d in (training or {}).get("data") or [] if _looks_like_hub_id(d)]
    title = repo_id.split("/")[-1] if repo_id else out_dir.name
    card_data = _card.build_card_data(model_name=title, model_type=config.model_type, license=license,
                                      pipeline_tag=pipeline_tag, datasets=datasets, base_model=base_hub,
                                      records=kept)
    body = _card_body(title=title, model_id=repo_id or str(out_dir.resolve()), config=config, family=family,
                      auto_name=auto.__name__, pipeline_tag=pipeline_tag, training=training, systems=systems,
                      records=kept, base_local=base_local, base_hub=base_hub,
                      has_loss_curve=(tmp / LOSS_CURVE).is_file(), source=src)
    _write_card(_card.render_card(card_data, body), tmp)


def _version() -> str:
    from .. import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- push ------------------------------------------------------------------------------------------------------------
def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES",
                                                                                                "TRUE"}


def _token() -> str | None:
    import huggingface_hub

    return os.environ.get("HF_TOKEN") or huggingface_hub.get_token() or None


def push_to_hub(folder, repo_id: str | None, *, private: bool | None = None) -> str:
    """create_repo + upload_folder. Raises PushUnavailable (one message naming what is missing) when there is no
    --repo-id, no token or no network; the local folder is left as it is."""
    import huggingface_hub

    folder = Path(folder)
    missing = []
    if not repo_id:
        missing.append("--repo-id ORG/NAME")
    token = _token()
    if not token:
        missing.append("a Hugging Face token (set HF_TOKEN or run `hf auth login`)")
    if _offline():
        missing.append("network access (HF_HUB_OFFLINE is set; unset it to push)")
    if missing:
        raise PushUnavailable(f"not pushed to the Hub: missing {'; '.join(missing)}. The model is published locally "
                              f"at {folder}; push it later with `adlr-hf publish SRC {folder} --repo-id ORG/NAME "
                              "--push`.")
    try:
        huggingface_hub.create_repo(repo_id, token=token, private=private, exist_ok=True)
        info = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=folder, token=token,
                                             commit_message="Upload with adlr-hf publish")
    except Exception as err:  # noqa: BLE001 - network and Hub errors all mean "not pushed"; say which
        raise PushUnavailable(f"not pushed to the Hub: {type(err).__name__}: {err} (check the network and that the "
                              f"token may write to {repo_id}). The model is published locally at {folder}.") from None
    return str(getattr(info, "commit_url", info))
