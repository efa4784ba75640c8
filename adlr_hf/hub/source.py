"""What `adlr-hf publish` reads: a run folder (RUN/model + run_info.json + metrics), a model folder, or a checkpoint
RUN/checkpoints/step_N, and the training summary the card shows for it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..training.checkpoint import CHECKPOINTS, TRAINER_STATE, run_dir_of

logger = logging.getLogger(__name__)

LOSS_CURVE = "loss_curve.png"
RUN_INFO = "run_info.json"
METRICS = "metrics.jsonl"


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


def read_json(path: Path) -> dict:
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
    """A run folder, an HF model folder, or a checkpoint RUN/checkpoints/step_N."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist; pass a run folder (adlr-hf train --out), a model folder "
                                "with config.json, or a checkpoint folder RUN/checkpoints/step_N.")
    if not p.is_dir():
        raise ValueError(f"{str(p)!r} is a file; pass a run, model or checkpoint folder.")
    if (p / TRAINER_STATE).is_file():
        src = Source("checkpoint", p, checkpoint_dir=p, run_dir=run_dir_of(p),
                     trainer_state=read_json(p / TRAINER_STATE))
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
                         trainer_state=read_json(ckpt / TRAINER_STATE))
    else:
        raise ValueError(f"{str(p)!r} is not a run folder (run_info.json), a model folder (config.json) or a "
                         f"checkpoint ({TRAINER_STATE}); pass one of those.")
    if src.run_dir is not None and (src.run_dir / RUN_INFO).is_file():
        src.run_info = read_json(src.run_dir / RUN_INFO)
    src.metrics = _read_metrics(src.run_dir)
    return src


def training_summary(source: Source) -> dict | None:
    """The run's settings and results; for a checkpoint, its own step and unit count."""
    info = dict(source.run_info or {})
    state = source.trainer_state or {}
    if not info and not state:
        return None
    for key in ("model", "task", "engine", "zero_stage", "tp", "dp", "world_size", "data", "seq_len",
                "micro_batch_size", "grad_accum", "seed", "bf16", "fp16", "mixed_precision", "unit"):
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


def looks_like_hub_id(name) -> bool:
    if not isinstance(name, str) or name.count("/") != 1 or Path(name).exists() or name.startswith((".", "/")):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def start_model(training: dict | None) -> tuple[str | None, str | None]:
    """(Hub id of the model the run started from, its local path) when the run fine-tuned an existing model."""
    from .systems import SYSTEMS_FILE

    if not training:
        return None, None
    start = training.get("model")
    if not isinstance(start, str):
        return None, None
    path = Path(start)
    if path.is_dir():
        hub_id = None
        if (path / SYSTEMS_FILE).is_file():
            hub_id = read_json(path / SYSTEMS_FILE).get("repo_id")
        return hub_id, str(path)
    if looks_like_hub_id(start):
        return start, None
    return None, None
