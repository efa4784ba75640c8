"""Model cards for published adlr_hf folders: `huggingface_hub.ModelCard` with YAML metadata, a `model-index` of every
evaluation recorded so far, systems numbers measured by the zoo, and usage snippets that run as written.

Evaluations live in two places: the card's `model-index` (what the Hub shows) and `adlr_hf_evals.json` (the raw
records, each tagged with the SHA-256 of the weights it was computed on), so a re-publish of the same weights keeps
them and a publish of other weights drops them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

README = "README.md"
EVALS_FILE = "adlr_hf_evals.json"
EVAL_START = "<!-- adlr_hf:evaluation:start -->"
EVAL_END = "<!-- adlr_hf:evaluation:end -->"
LIBRARY_TAG = "adlr_hf"


# -- per-family facts, keyed by config.model_type (families add their row) ------------------------------------------
@dataclass(frozen=True)
class Family:
    name: str
    slug: str  # the family's Hub tag
    paper_title: str
    arxiv: tuple[str, ...]
    reference_repo: str
    description: str
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    limitations: tuple[str, ...] = field(default_factory=tuple)


FAMILIES: dict[str, Family] = {
    "adlr_megatron_gpt": Family(
        name="Megatron-GPT", slug="megatron-gpt",
        paper_title="Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
        arxiv=("1909.08053",), reference_repo="https://github.com/NVIDIA/Megatron-LM",
        description="a GPT-2-style decoder-only language model (pre-LN blocks, GeLU MLP, learned positions, tied "
                    "input/output embeddings) whose attention, MLP and vocabulary layers split across GPUs with "
                    "Megatron's intra-layer tensor parallelism",
        pipeline_tag="text-generation", tags=("gpt2", "causal-lm", "tensor-parallelism"),
        limitations=("A language model continues text; it states falsehoods fluently and reproduces biases of its "
                     "training data. It was not tuned to follow instructions or for safety.",)),
    "adlr_megatron_bert": Family(
        name="Megatron-BERT", slug="megatron-bert",
        paper_title="Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
        arxiv=("1909.08053",), reference_repo="https://github.com/NVIDIA/Megatron-LM",
        description="a BERT encoder with Megatron's tensor parallelism and the paper's pre-LN block ordering",
        pipeline_tag="fill-mask", tags=("bert", "tensor-parallelism")),
    "adlr_pd_resnet": Family(
        name="PD-ResNet / PD-VGG", slug="pd-resnet",
        paper_title="Partial Convolution based Padding",
        arxiv=("1811.11718",), reference_repo="https://github.com/NVIDIA/partialconv",
        description="a ResNet or VGG image classifier (torchvision's layout and parameter names) whose zero padding "
                    "is replaced by partial-convolution padding: each padded convolution renormalises its border "
                    "windows by the share of the window that lies inside the image; its residual blocks split "
                    "their channels across GPUs with Megatron-style tensor parallelism",
        pipeline_tag="image-classification", tags=("resnet", "vgg", "partial-convolution", "tensor-parallelism"),
        limitations=("An image classifier only knows the classes it was trained on; out-of-distribution images "
                     "still get one of them, often with high confidence.",)),
    "adlr_emotion": Family(
        name="Emotion classifier (transformer / mLSTM)", slug="adlr-emotion",
        paper_title="Practical Text Classification With Large Pre-Trained Language Models",
        arxiv=("1812.01207",), reference_repo="https://github.com/NVIDIA/sentiment-discovery",
        description="a multi-label emotion classifier fine-tuned from a pre-trained language model (a Megatron-GPT "
                    "transformer pooled at the last real token, or the byte-level mLSTM baseline): a "
                    "Dropout-[Linear-PReLU-Dropout]xk-Linear head with one sigmoid per emotion, trained with BCE plus "
                    "0.02 x the LM loss, and per-emotion decision thresholds tuned on validation data "
                    "(`config.thresholds`, applied by `model.predict`)",
        pipeline_tag="text-classification", tags=("emotion", "multi-label-classification", "sentiment"),
        limitations=("Emotion labels are subjective and the training data (tweets, Reddit comments) carries its "
                     "annotators' and authors' biases; scores on other domains are lower and uncalibrated.",)),
    "adlr_mlstm": Family(
        name="mLSTM byte-level LM", slug="adlr-mlstm",
        paper_title="Practical Text Classification With Large Pre-Trained Language Models",
        arxiv=("1812.01207", "1609.07959"), reference_repo="https://github.com/NVIDIA/sentiment-discovery",
        description="a multiplicative-LSTM language model over UTF-8 bytes (vocabulary 257 with padding), the "
                    "recurrent baseline the paper fine-tunes for emotion classification",
        pipeline_tag=None, tags=("mlstm", "character-level", "causal-lm")),
}


def family_for(model_type: str | None) -> Family | None:
    return FAMILIES.get(model_type or "")


# -- evaluation tasks: how a result of `adlr-hf evaluate --task T` appears in the model-index --------------------------
@dataclass(frozen=True)
class EvalTask:
    task_type: str
    task_name: str
    dataset_type: str  # Hub dataset id
    dataset_name: str
    dataset_config: str | None
    dataset_split: str
    metrics: dict[str, tuple[str, str]]  # result key -> (model-index metric type, display name)


_PPL = {"perplexity": ("perplexity", "Perplexity"), "ppl": ("perplexity", "Perplexity"),
        "adjusted_perplexity": ("adjusted_perplexity", "Adjusted perplexity (word-level, Megatron)"),
        "adjusted_ppl": ("adjusted_perplexity", "Adjusted perplexity (word-level, Megatron)")}
_EMOTION_METRICS = {"macro_f1": ("f1_macro", "Macro F1"), "micro_f1": ("f1_micro", "Micro F1"),
                    "jaccard_accuracy": ("jaccard_accuracy", "Jaccard accuracy (SemEval E-c)")}
EVAL_TASKS: dict[str, EvalTask] = {
    "wikitext103": EvalTask("text-generation", "Language modeling", "Salesforce/wikitext", "WikiText-103",
                            "wikitext-103-v1", "test", _PPL),
    "wikitext2": EvalTask("text-generation", "Language modeling", "Salesforce/wikitext", "WikiText-2",
                          "wikitext-2-v1", "test", _PPL),
    "lambada": EvalTask("text-generation", "LAMBADA cloze (last word)", "EleutherAI/lambada_openai", "LAMBADA",
                        "default", "test", {"accuracy": ("accuracy", "Accuracy"),
                         "acc": ("accuracy", "Accuracy"),
                         "accuracy_last_token": ("accuracy_last_token", "Accuracy (last BPE token only)")}),
    # The dataset is the evaluated folder (empty dataset fields: taken from the record's "data" and "split").
    "image-classification": EvalTask("image-classification", "Image classification", "", "", None, "test",
                                     {"top1": ("accuracy", "Top-1 accuracy"),
                                      "top5": ("top_5_accuracy", "Top-5 accuracy")}),
    # Emotion classification (adlr_hf.evaluation.emotion_eval): dataset named after the evaluated folder, split from
    # the record (the paper reports SemEval E-c on dev).
    "goemotions": EvalTask("text-classification", "Multi-label emotion classification", "", "", None, "test",
                           _EMOTION_METRICS),
    "semeval-ec": EvalTask("text-classification", "Multi-label emotion classification", "", "", None, "validation",
                           _EMOTION_METRICS),
}
_COUNT_KEYS = ("num_", "n_", "count", "tokens", "examples", "seconds", "time")


def eval_results_for(record: dict) -> list[EvalResult]:
    """The model-index entries of one evaluation record ({"task", "model", "data", "metrics"})."""
    task = EVAL_TASKS.get(record["task"])
    out = []
    for key, value in record["metrics"].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if task is not None:
            if key not in task.metrics:
                continue
            metric_type, metric_name = task.metrics[key]
        elif any(part in key for part in _COUNT_KEYS):
            continue
        else:
            metric_type, metric_name = key, key.replace("_", " ").capitalize()
        if task is not None:
            dataset_type, dataset_name, split = task.dataset_type, task.dataset_name, task.dataset_split
            if not dataset_type:  # a task evaluated on any folder: name the dataset after it
                dataset_type = dataset_name = _dataset_from_record(record)
                split = str(record.get("split") or split)
            out.append(EvalResult(task_type=task.task_type, task_name=task.task_name, dataset_type=dataset_type,
                                  dataset_name=dataset_name, dataset_config=task.dataset_config,
                                  dataset_split=split, metric_type=metric_type,
                                  metric_value=float(value), metric_name=metric_name))
        else:
            name = record["task"]
            out.append(EvalResult(task_type="text-generation", dataset_type=name, dataset_name=name,
                                  metric_type=metric_type, metric_value=float(value), metric_name=metric_name))
    return out


def _dataset_from_record(record: dict) -> str:
    data = record.get("data")
    name = os.path.basename(os.path.normpath(str(data))) if data else ""
    return name or record["task"]


def _result_dataset_key(result: EvalResult) -> tuple:
    return (result.task_type, result.dataset_type, result.dataset_config, result.dataset_split)


def validate_eval_record(result) -> dict:
    if not isinstance(result, dict):
        raise ValueError(f"an evaluation result must be a dict with 'task' and 'metrics', got {type(result).__name__}")
    task = result.get("task")
    if not isinstance(task, str) or not task:
        raise ValueError(f"evaluation result has no task name (got {task!r}); pass {{'task': 'wikitext103', ...}}")
    metrics = result.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"evaluation result for task {task!r} has no 'metrics' dict; pass e.g. "
                         "{'metrics': {'perplexity': 19.3}}")
    record = {"task": task, "model": result.get("model"), "data": result.get("data"), "metrics": dict(metrics)}
    if not eval_results_for(record):
        known = ", ".join(sorted(EVAL_TASKS[task].metrics)) if task in EVAL_TASKS else "numeric values"
        raise ValueError(f"evaluation result for task {task!r} has no metric the card can show (got "
                         f"{sorted(metrics)}); expected {known}.")
    for key in ("settings", "split", "seq_len", "stride"):
        if key in result:
            record[key] = result[key]
    return record


# -- weights identity ------------------------------------------------------------------------------------------------
def weights_fingerprint(folder) -> str | None:
    """SHA-256 over every tensor (name, dtype, shape, raw bytes, in name order) of the folder's safetensors files;
    the same for one file or many shards. None when the folder holds no safetensors."""
    folder = Path(folder)
    entries = []
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                entries.append((name, meta["dtype"], meta["shape"], path, 8 + n + meta["data_offsets"][0],
                                meta["data_offsets"][1] - meta["data_offsets"][0]))
    if not entries:
        return None
    digest = hashlib.sha256()
    handles = {}
    try:
        for name, dtype, shape, path, start, length in sorted(entries):
            digest.update(f"{name}|{dtype}|{shape}|".encode())
            f = handles.get(path) or handles.setdefault(path, path.open("rb"))
            f.seek(start)
            while length > 0:
                chunk = f.read(min(length, 1 << 24))
                if not chunk:
                    raise ValueError(f"{path} is truncated; re-save the model.")
                digest.update(chunk)
                length -= len(chunk)
    finally:
        for f in handles.values():
            f.close()
    return digest.hexdigest()


# -- the evaluations file ------------------------------------------------------------------------------------------
def read_eval_records(folder) -> list[dict]:
    path = Path(folder) / EVALS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or delete it.") from None
    return list(data.get("evaluations", []))


def merge_eval_records(*groups: list[dict]) -> list[dict]:
    """One record per task, the most recently recorded winning; in first-seen task order."""
    by_task: dict[str, dict] = {}
    for group in groups:
        for record in group:
            old = by_task.get(record["task"])
            if old is None or str(record.get("recorded_at", "")) >= str(old.get("recorded_at", "")):
                by_task[record["task"]] = record
    return list(by_task.values())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_eval_records(folder, records: list[dict]) -> None:
    _atomic_write_text(Path(folder) / EVALS_FILE, json.dumps({"format": 1, "evaluations": records}, indent=2) + "\n")


# -- card text -------------------------------------------------------------------------------------------------------
def _fmt_num(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.{digits}g}"


def evaluation_section(records: list[dict]) -> str:
    lines = [EVAL_START, "## Evaluation", ""]
    rows = []
    for record in records:
        task = EVAL_TASKS.get(record["task"])
        for result in eval_results_for(record):
            dataset = result.dataset_name if task else record["task"]
            split = f" ({result.dataset_split})" if result.dataset_split else ""
            settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
            shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k in ("seq_len", "stride", "strict"))
            rows.append(f"| {record['task']} | {dataset}{split} | {result.metric_name or result.metric_type} | "
                        f"{_fmt_num(result.metric_value)} | {shown} | {record.get('recorded_at', '')} |")
    if rows:
        lines += ["Recorded with `adlr-hf evaluate ... --update-card` (also in the `model-index` above and in "
                  f"`{EVALS_FILE}`):", "", "| task | dataset | metric | value | settings | recorded |", "|---|---|---|---|---|---|",
                  *rows]
    else:
        lines.append("No evaluation recorded yet. Record one with `adlr-hf evaluate MODEL_DIR --task wikitext103 "
                     "--data PATH --update-card` (tasks: " + ", ".join(EVAL_TASKS) + ").")
    lines.append(EVAL_END)
    return "\n".join(lines)


def replace_evaluation_section(text: str, records: list[dict]) -> str:
    section = evaluation_section(records)
    start, end = text.find(EVAL_START), text.find(EVAL_END)
    if start != -1 and end > start:
        return text[:start] + section + text[end + len(EVAL_END):]
    return text.rstrip("\n") + "\n\n" + section + "\n"


_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}\n"


def build_card_data(*, model_name: str, model_type: str | None, license: str, pipeline_tag: str | None,
                    datasets: list[str] | None, base_model: str | None, records: list[dict]) -> ModelCardData:
    family = family_for(model_type)
    tags = [LIBRARY_TAG]
    if family is not None:
        tags += [family.slug, *[f"arxiv:{a}" for a in family.arxiv], *family.tags]
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
    """`card.save` into a temporary file beside README.md, then an atomic rename over it."""
    path = Path(folder) / README
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        card.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- record_evaluation -----------------------------------------------------------------------------------------------
def _current_fingerprint(model_dir: Path) -> str | None:
    from .systems import SYSTEMS_FILE

    systems = model_dir / SYSTEMS_FILE
    if systems.is_file():
        try:
            fp = json.loads(systems.read_text()).get("weights_sha256")
        except json.JSONDecodeError:
            fp = None
        if fp:
            return fp
    return weights_fingerprint(model_dir)


def _minimal_card(model_dir: Path) -> ModelCard:
    model_type = None
    if (model_dir / "config.json").is_file():
        try:
            model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
        except json.JSONDecodeError:
            pass
    family = family_for(model_type)
    data = build_card_data(model_name=model_dir.name, model_type=model_type, license=None,
                           pipeline_tag=family.pipeline_tag if family else None, datasets=None, base_model=None,
                           records=[])
    what = (f"{family.name}, {family.description} ({family.paper_title}, arXiv:{', '.join(family.arxiv)})."
            if family else "An adlr_hf model.")
    body = (f"# {model_dir.name}\n\n{what}\n\nThis card was created by `record_evaluation`; "
            "`adlr-hf publish` writes the full card.\n\n" + evaluation_section([]))
    return render_card(data, body)


def record_evaluation(model_dir, result: dict) -> dict:
    """Add (or replace) the evaluation of `result["task"]` in `model_dir`'s card and in `adlr_hf_evals.json`.

    `result`: {"task": "wikitext103" | "wikitext2" | "lambada" | ..., "model": ..., "data": ..., "metrics": {...}}.
    Records for other tasks are kept when they were computed on the same weights. A folder without a card gets a
    minimal one. Both files are replaced atomically. Returns the stored record.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {str(model_dir)!r} does not exist; pass the folder that was evaluated.")
    record = validate_eval_record(result)
    fingerprint = _current_fingerprint(model_dir)
    record["weights_sha256"] = fingerprint
    record["recorded_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    readme = model_dir / README
    card = ModelCard.load(readme) if readme.is_file() else _minimal_card(model_dir)  # parse errors before writing

    kept = [r for r in read_eval_records(model_dir)
            if r["task"] != record["task"] and (fingerprint is None or r.get("weights_sha256") in (None, fingerprint))]
    records = merge_eval_records(kept, [record])
    ours = [res for r in records for res in eval_results_for(r)]
    ours_keys = {_result_dataset_key(res) for res in ours}
    # Entries for datasets we do not track (hand-written ones) stay; ours are rebuilt from the records.
    foreign = [res for res in (card.data.eval_results or []) if _result_dataset_key(res) not in ours_keys
               and not any(_result_dataset_key(res) == _result_dataset_key(x)
                           for r in read_eval_records(model_dir) for x in eval_results_for(r))]
    card.data.eval_results = foreign + ours
    if not getattr(card.data, "model_name", None):
        card.data.model_name = model_dir.name
    card.data.metrics = sorted({res.metric_type for res in card.data.eval_results}) or None
    card.text = replace_evaluation_section(card.text, records)

    write_eval_records(model_dir, records)
    save_card(card, model_dir)
    return record
