"""`record_evaluation`: add an evaluation result to a model folder's card (`model-index`, Evaluation section) and to
`adlr_hf_evals.json` (`adlr-hf evaluate ... --update-card`)."""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

from huggingface_hub import ModelCard

from ..atomic import write_bytes_atomically
from .card import minimal_card, save_card
from .model_index import (
    README,
    _result_dataset_key,
    eval_results_for,
    merge_eval_records,
    read_eval_records,
    replace_evaluation_section,
    validate_eval_record,
    weights_fingerprint,
    write_eval_records,
)
from .systems import SYSTEMS_FILE


def _current_fingerprint(model_dir: Path) -> str | None:
    systems = model_dir / SYSTEMS_FILE
    if systems.is_file():
        try:
            fp = json.loads(systems.read_text()).get("weights_sha256")
        except json.JSONDecodeError:
            fp = None
        if fp:
            return fp
    return weights_fingerprint(model_dir)


def model_context(model_dir: Path):
    """(config or None, family or None, task or None, evaluations that fit) of a model folder."""
    from ..registry import family_for
    from ..tasks import evaluations_for, task_for_model

    config = None
    if (model_dir / "config.json").is_file():
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(model_dir)
        except (OSError, ValueError, KeyError):
            config = None
    if config is None:
        return None, None, None, []
    suggested = evaluations_for(config)
    return config, family_for(config), task_for_model(config), suggested


FIGURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.png")


def check_figures(figures) -> list[dict]:
    """An evaluation's pictures for the card: [{"file": "name.png", "caption": str, "png": bytes}, ...]."""
    figures = list(figures or ())
    for figure in figures:
        if not isinstance(figure, dict) or not FIGURE_NAME.fullmatch(str(figure.get("file", ""))) \
                or not isinstance(figure.get("caption"), str) or not isinstance(figure.get("png"), bytes) \
                or not figure["png"].startswith(b"\x89PNG"):
            shown = {k: (v if k != "png" else f"<{type(v).__name__}>") for k, v in figure.items()} \
                if isinstance(figure, dict) else figure
            raise ValueError(f"evaluation figure {shown!r} must be {{'file': 'name.png' (a plain file name), "
                             "'caption': str, 'png': PNG bytes}")
    return figures


def record_evaluation(model_dir, result: dict) -> dict:
    """Add (or replace) the evaluation of `result["task"]` in `model_dir`'s card and in `adlr_hf_evals.json`.

    `result`: {"task": "wikitext103" | "wikitext2" | "lambada" | ..., "model": ..., "data": ..., "metrics": {...}}.
    Records for other tasks are kept when they were computed on the same weights. A folder without a card gets a
    minimal one. Both files are replaced atomically. An optional `result["figures"]` ([{"file", "caption", "png"}])
    is written beside the card (each file atomically) and shown under the Evaluation table. Returns the stored
    record.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {str(model_dir)!r} does not exist; pass the folder that was evaluated.")
    figures = check_figures(result.get("figures") if isinstance(result, dict) else None)
    record = validate_eval_record(result)
    if figures:
        record["figures"] = [{"file": f["file"], "caption": f["caption"]} for f in figures]
    fingerprint = _current_fingerprint(model_dir)
    record["weights_sha256"] = fingerprint
    record["recorded_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    config, family, task, suggested = model_context(model_dir)
    readme = model_dir / README
    # Parse errors surface before anything is written.
    card = ModelCard.load(readme) if readme.is_file() else minimal_card(model_dir, config, family, task, suggested)
    model_name = getattr(card.data, "model_name", None) or model_dir.name

    previous = read_eval_records(model_dir)
    kept = [r for r in previous
            if r["task"] != record["task"] and (fingerprint is None or r.get("weights_sha256") in (None, fingerprint))]
    records = merge_eval_records(kept, [record])
    ours = [res for r in records for res in eval_results_for(r)]
    ours_keys = {_result_dataset_key(res) for res in ours}
    tracked = {_result_dataset_key(x) for r in previous for x in eval_results_for(r)}
    # Entries for datasets we do not track (hand-written ones) stay; ours are rebuilt from the records.
    foreign = [res for res in (card.data.eval_results or []) if _result_dataset_key(res) not in ours_keys
               and _result_dataset_key(res) not in tracked]
    card.data.eval_results = foreign + ours
    card.data.model_name = model_name
    card.data.metrics = sorted({res.metric_type for res in card.data.eval_results}) or None
    card.text = replace_evaluation_section(card.text, records, suggested)

    for figure in figures:  # before the card that shows them
        write_bytes_atomically(model_dir / figure["file"], figure["png"])
    write_eval_records(model_dir, records)
    save_card(card, model_dir)
    return record
