"""`adlr-hf publish RUN_OR_CHECKPOINT OUT_DIR`: a folder laid out as a Hub model repository, written atomically.

The folder holds what `save_pretrained` writes (config.json with `auto_map`, model.safetensors or shards with
model.safetensors.index.json, generation_config.json, the configuration/modeling .py files for
`trust_remote_code=True`), the processor (tokenizer, image processor), every sub-folder of the export that is
itself a saved model (one with a config.json, such as a model the exported one runs with), a copy of the run's
loss curve, `README.md`
(the model card, see card.py), `adlr_hf_systems.json` (the systems numbers, and the marker that the folder is a
publish) and `adlr_hf_evals.json` (model_index.py).

Everything is written into a hidden temporary sibling of OUT_DIR and renamed over it at the end (`atomic.py`), so a
failure leaves a previous publish untouched and no temporary folder behind. A non-empty OUT_DIR that is not a previous
publish is refused unless `force=True`. A previous publish keeps its recorded evaluations when the new weights are the
same.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from ..atomic import write_atomically, write_text_atomically
from . import card as _card
from . import model_index as _index
from .push import PushUnavailable, push_to_hub
from .source import LOSS_CURVE, RUN_INFO, Source, looks_like_hub_id, resolve_source, start_model, training_summary
from .systems import SYSTEMS_FILE

logger = logging.getLogger(__name__)

_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


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
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(writing|replaced|export)-(\d+)-[0-9a-f]{{8}}$")
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


def publish(source, out_dir, *, repo_id: str | None = None, max_shard_size="5GB", license: str = "apache-2.0",
            force: bool = False, measure_inference: bool = True, inference_runs: int = 3) -> Path:
    """Write the Hub-layout folder for `source` (run, model or checkpoint folder) at `out_dir`; returns `out_dir`."""

    out_dir = Path(out_dir)
    _recover_stale(out_dir)
    src = resolve_source(source)
    _check_options(repo_id, max_shard_size, license)
    _check_out_dir(out_dir, src, force)
    previous = out_dir.is_dir() and is_previous_publish(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    export_tmp = out_dir.parent / f".{out_dir.name}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def build(tmp: Path) -> None:
        model_dir = src.model_dir
        if src.kind == "checkpoint":
            from ..training.export import export_checkpoint

            model_dir = export_checkpoint(src.checkpoint_dir, export_tmp)
        _publish_into(tmp, out_dir, src, model_dir, repo_id=repo_id, max_shard_size=max_shard_size,
                      license=license, previous=previous, measure_inference=measure_inference,
                      inference_runs=inference_runs)

    try:
        write_atomically(out_dir, build)
    finally:
        shutil.rmtree(export_tmp, ignore_errors=True)
    logger.info("published %s -> %s", src.path, out_dir)
    return out_dir


def _load_processor(model_dir: Path):
    """The processor saved beside the model (tokenizer, image or video processor), or None."""
    if (model_dir / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir)
    if (model_dir / "preprocessor_config.json").is_file():
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(model_dir)
    if (model_dir / "video_preprocessor_config.json").is_file():
        from transformers import AutoVideoProcessor

        return AutoVideoProcessor.from_pretrained(model_dir)
    return None


def _copy_model_subfolders(model_dir: Path, tmp: Path) -> None:
    """Copy every sub-folder of the export that is itself a saved model (holds a config.json), e.g. a model the
    exported one needs at inference and saved beside itself; other sub-folders are not part of the model."""
    from ..training.export import saved_model_subfolders

    for sub in saved_model_subfolders(model_dir):
        if (tmp / sub.name).exists():
            raise ValueError(f"{str(model_dir)!r}: sub-folder {sub.name!r} clashes with a file the publish writes; "
                             "rename it")
        shutil.copytree(sub, tmp / sub.name)


def _carry_figures(records: list[dict], folders: list[Path], tmp: Path) -> None:
    """Copy the figures of kept evaluation records from the folder they were recorded in; a figure whose file is
    gone is dropped from its record (the card then shows no broken picture)."""
    for record in records:
        figures = []
        for figure in record.get("figures") or ():
            found = next((f / figure["file"] for f in folders if (f / figure["file"]).is_file()), None)
            if found is not None:
                shutil.copy2(found, tmp / figure["file"])
                figures.append(figure)
        if "figures" in record:
            record["figures"] = figures


def _publish_into(tmp: Path, out_dir: Path, src: Source, model_dir: Path, *, repo_id, max_shard_size, license,
                  previous: bool, measure_inference: bool, inference_runs: int) -> None:
    from transformers import AutoConfig

    from ..registry import count_parameters, family_for
    from ..tasks import evaluations_for, task_for_model
    from ..training.export import auto_class_for

    config = AutoConfig.from_pretrained(model_dir)
    auto = auto_class_for(config)
    model = auto.from_pretrained(model_dir, dtype="auto").eval()
    processor = _load_processor(model_dir)
    family = family_for(config)
    training = training_summary(src)
    task = task_for_model(config, (training or {}).get("task"))
    pipeline_tag = task.pipeline_tag if task is not None else None

    model.save_pretrained(tmp, max_shard_size=max_shard_size)
    if processor is not None:
        processor.save_pretrained(tmp)
    _copy_model_subfolders(model_dir, tmp)
    fingerprint = _index.weights_fingerprint(tmp)
    systems = {
        "format": 2, "adlr_hf_version": _version(), "published_at": _now(), "repo_id": repo_id,
        "source": {"kind": src.kind, "name": src.path.resolve().name}, "model_type": config.model_type,
        "task": task.name if task is not None else None, "weights_sha256": fingerprint,
        "parameters": count_parameters(model), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "training": _training_systems(training), "flops": None, "inference": None,
    }
    if task is not None:  # the task's own numbers (FLOPs, inference throughput), measured now
        systems.update(task.systems(model, processor, training, measure_inference, inference_runs))
    # Evaluations: those recorded on the source folder and on a previous publish, when the weights are the same.
    kept = [r for r in _index.read_eval_records(model_dir) if r.get("weights_sha256") in (None, fingerprint)]
    if previous:
        prior = _index.read_eval_records(out_dir)
        same = [r for r in prior if r.get("weights_sha256") == fingerprint]
        if len(same) < len(prior):
            logger.info("dropping %d evaluation(s) of %s: they were recorded on other weights", len(prior) - len(same),
                        out_dir)
        kept = _index.merge_eval_records(same, kept)
    for record in kept:
        record.setdefault("weights_sha256", fingerprint)
    _carry_figures(kept, ([out_dir] if previous else []) + [model_dir], tmp)
    if src.run_dir is not None and (src.run_dir / LOSS_CURVE).is_file():
        shutil.copy2(src.run_dir / LOSS_CURVE, tmp / LOSS_CURVE)
    import json

    write_text_atomically(tmp / SYSTEMS_FILE, json.dumps(systems, indent=2) + "\n")
    _index.write_eval_records(tmp, kept)

    base_hub, base_local = start_model(training)
    datasets = [d for d in (training or {}).get("data") or [] if looks_like_hub_id(d)]
    title = repo_id.split("/")[-1] if repo_id else out_dir.name
    # Without --repo-id the snippets name the folder by its own name (where it is uploaded or copied to).
    model_id = repo_id or out_dir.name
    suggested = evaluations_for(config)
    card_data = _card.build_card_data(model_name=title, family=family, license=license, pipeline_tag=pipeline_tag,
                                      model_type=config.model_type, datasets=datasets, base_model=base_hub,
                                      records=kept)
    body = _card.card_body(title=title, model_id=model_id, config=config, family=family, task=task,
                           auto_name=auto.__name__, training=training,
                           systems=systems, records=kept, suggested=suggested,
                           base_local=base_local, base_hub=base_hub, has_loss_curve=(tmp / LOSS_CURVE).is_file(),
                           source_kind=src.kind)
    _card.save_card(_card.render_card(card_data, body), tmp)


def _training_systems(training: dict | None) -> dict | None:
    """Training throughput and memory as the run recorded them (`run_info.json`)."""
    if not training:
        return None
    unit = training.get("unit") or "tokens"
    rate = training.get(f"{unit}_per_second")
    if rate is None:
        return None
    return {"unit": unit, f"{unit}_per_second": rate, "seconds": training.get("seconds"),
            "peak_memory_mib": training.get("peak_memory_mib"), "machine": training.get("machine"),
            "tp": training.get("tp"), "dp": training.get("dp"), "engine": training.get("engine"),
            "zero_stage": training.get("zero_stage"), "source": RUN_INFO}


def _version() -> str:
    from .. import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["PushUnavailable", "is_previous_publish", "publish", "push_to_hub"]
