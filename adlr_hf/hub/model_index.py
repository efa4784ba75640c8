"""Evaluation results on a published folder: `adlr_hf_evals.json` (the raw records, each tagged with the SHA-256 of
the weights it was computed on, so a re-publish of the same weights keeps them and other weights drop them), the
card's `model-index` entries (from the evaluation's `ModelIndexEntry`, declared by its task) and the card's
Evaluation section; `record_evaluation` adds one (`adlr-hf evaluate ... --update-card`)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from huggingface_hub import EvalResult

from ..atomic import write_text_atomically
from .format import fmt_num

README = "README.md"
EVALS_FILE = "adlr_hf_evals.json"
EVAL_START = "<!-- adlr_hf:evaluation:start -->"
EVAL_END = "<!-- adlr_hf:evaluation:end -->"


def _entry(task_name: str):
    from ..tasks import find_evaluation

    found = find_evaluation(task_name, missing_ok=True)
    return found[1].model_index if found is not None else None


_COUNT_KEYS = ("num_", "n_", "count", "tokens", "examples", "seconds", "time")


def eval_results_for(record: dict) -> list[EvalResult]:
    """The model-index entries of one evaluation record ({"task", "model", "data", "metrics"})."""
    task = _entry(record["task"])
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
        entry = _entry(task)
        known = ", ".join(sorted(entry.metrics)) if entry is not None else "numeric values"
        raise ValueError(f"evaluation result for task {task!r} has no metric the card can show (got "
                         f"{sorted(metrics)}); expected {known}.")
    for key in ("settings", "split", "seq_len", "stride", "figures"):
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


def write_eval_records(folder, records: list[dict]) -> None:
    write_text_atomically(Path(folder) / EVALS_FILE, json.dumps({"format": 1, "evaluations": records}, indent=2) + "\n")




# Settings that change an evaluation's numbers, shown beside them: text windows, segmentation's test-time
# augmentation (input scales averaged, horizontal flip), video interpolation gaps and prediction horizons.
SHOWN_SETTINGS = ("seq_len", "stride", "strict", "scales", "flip", "gaps", "interpolation", "horizon")


def settings_text(settings) -> str:
    """`k=v, ...` of the shown settings of a record; lists as comma-separated values (scales=0.5,1.0)."""
    if not isinstance(settings, dict):
        return ""
    return ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                     for k, v in settings.items() if k in SHOWN_SETTINGS)


def evaluation_section(records: list[dict], suggested: list[str] | None = None) -> str:
    """The card's Evaluation section; with no records, a hint naming the evaluations that fit the model
    (`suggested`)."""
    lines = [EVAL_START, "## Evaluation", ""]
    rows = []
    for record in records:
        task = _entry(record["task"])
        for result in eval_results_for(record):
            dataset = result.dataset_name if task else record["task"]
            split = f" ({result.dataset_split})" if result.dataset_split else ""
            shown = settings_text(record.get("settings"))
            rows.append(f"| {record['task']} | {dataset}{split} | {result.metric_name or result.metric_type} | "
                        f"{fmt_num(result.metric_value)} | {shown} | {record.get('recorded_at', '')} |")
    if rows:
        lines += ["Recorded with `adlr-hf evaluate ... --update-card` (also in the `model-index` above and in "
                  f"`{EVALS_FILE}`):", "", "| task | dataset | metric | value | settings | recorded |", "|---|---|---|---|---|---|",
                  *rows]
        for record in records:
            for figure in record.get("figures") or ():
                lines += ["", f"![{figure['caption']}]({figure['file']})", "",
                          f"*{record['task']}: {figure['caption']}*"]
    else:
        lines.append("No evaluation recorded yet.")
        if suggested:
            lines[-1] += (f" Record one with `adlr-hf evaluate MODEL_DIR --task {suggested[0]} --data PATH "
                          f"--update-card` (evaluations for this model: {', '.join(suggested)}).")
    lines.append(EVAL_END)
    return "\n".join(lines)


def replace_evaluation_section(text: str, records: list[dict], suggested: list[str] | None = None) -> str:
    section = evaluation_section(records, suggested)
    start, end = text.find(EVAL_START), text.find(EVAL_END)
    if start != -1 and end > start:
        return text[:start] + section + text[end + len(EVAL_END):]
    return text.rstrip("\n") + "\n\n" + section + "\n"
