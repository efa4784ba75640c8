"""Run checkpoints: the engine's own files plus what makes a resume bit-exact (step, data position, RNG streams),
written so that a crash at any moment leaves the previous checkpoint complete.

Layout of a run folder:

    RUN/config/                      the resolved config.json and processor, written when the run starts
    RUN/checkpoints/step_00000012/   one complete checkpoint: the engine's files, rng_state_rank<r>.pt per rank and
                                     trainer_state.json (written last, listing every file with its size)
    RUN/checkpoints/latest           the name of the newest complete checkpoint (moved last)
    RUN/checkpoints/.step_00000015.partial/   a checkpoint being written (a leftover of a crash is ignored)

A checkpoint is written into its `.partial` folder by every rank, then rank 0 writes `trainer_state.json`, renames the
folder and moves `latest`. Resuming checks the files against the list before anything is loaded.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_text_atomically
from ..parallel import get_rng_tracker

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
RUN_CONFIG = "config"  # RUN/config/: the run's resolved config.json and its processor, written when it starts


def write_run_config(run_dir: Path, model, task_run) -> Path:
    """RUN/config/: the model's resolved config (with its class in `architectures`) and the processor, so a
    checkpoint of the run can be exported without re-deriving them."""
    from ..atomic import write_atomically

    model.config.architectures = [type(model).__name__]

    def build(tmp: Path) -> None:
        model.config.save_pretrained(tmp)
        task_run.save_processor(tmp)

    out = Path(run_dir) / RUN_CONFIG
    write_atomically(out, build)
    return out


def run_dir_of(checkpoint_dir: Path) -> Path | None:
    """`<run>` for `<run>/checkpoints/step_N`, else None."""
    checkpoint_dir = Path(checkpoint_dir)
    return checkpoint_dir.parent.parent if checkpoint_dir.parent.name == CHECKPOINTS else None


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def partial_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f".{checkpoint_name(step)}.partial"


# -- RNG streams --------------------------------------------------------------------------------------------------
def rng_file(checkpoint_dir: Path, rank: int) -> Path:
    return checkpoint_dir / f"rng_state_rank{rank}.pt"


def capture_rng(generators: dict | None = None) -> dict:
    """Every random stream of this rank, as tensors and plain values (loadable with `weights_only=True`)."""
    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(python_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "tracker": get_rng_tracker().get_states(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict, generators: dict | None = None) -> None:
    torch.set_rng_state(state["torch"])
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    get_rng_tracker().set_states(state["tracker"])
    for name, generator in (generators or {}).items():
        generator.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_rng(checkpoint_dir: Path, rank: int, generators: dict | None = None) -> None:
    torch.save(capture_rng(generators), rng_file(checkpoint_dir, rank))


def load_rng(checkpoint_dir: Path, rank: int, generators: dict | None = None) -> None:
    path = rng_file(checkpoint_dir, rank)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint was written by a run with another number of "
                                "processes; resume with the same launcher settings.")
    restore_rng(torch.load(path, weights_only=True), generators)


# -- writing --------------------------------------------------------------------------------------------------------
def commit_checkpoint(partial: Path, final: Path, state: dict) -> Path:
    """Rank 0, once every rank's files are in `partial`: list them in trainer_state.json (the completion marker),
    rename the folder to `final` and move `latest` to it."""
    files = {str(p.relative_to(partial)): p.stat().st_size for p in sorted(partial.rglob("*")) if p.is_file()}
    write_text_atomically(partial / TRAINER_STATE, json.dumps({**state, "files": files}, indent=2))
    if final.exists():  # the same step saved again (a resumed run that ends where its checkpoint was)
        shutil.rmtree(final)
    partial.rename(final)
    write_text_atomically(final.parent / LATEST, final.name + "\n")
    return final


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` complete checkpoints (`--save-total-limit`); returns what was removed."""
    removed = []
    for ckpt in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(ckpt, ignore_errors=True)
        removed.append(ckpt)
    return removed


def write_trainer_state(checkpoint_dir: Path, state: dict) -> None:
    write_text_atomically(checkpoint_dir / TRAINER_STATE, json.dumps(state, indent=2))


def read_trainer_state(checkpoint_dir: Path) -> dict:
    return json.loads((checkpoint_dir / TRAINER_STATE).read_text())


# -- reading back -------------------------------------------------------------------------------------------------
def unreadable_reason(path: Path) -> str | None:
    """Why a checkpoint file cannot be read (None when it looks whole)."""
    if path.suffix in (".pt", ".bin", ".pth") and not zipfile.is_zipfile(path):
        return "it is not a complete torch file"
    if path.suffix == ".safetensors":
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "it is not a complete safetensors file"
            length = int.from_bytes(head, "little")
            try:
                header = json.loads(f.read(length))
            except (ValueError, UnicodeDecodeError):
                return "its safetensors header is damaged"
        ends = [entry["data_offsets"][1] for key, entry in header.items()
                if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
        if path.stat().st_size < 8 + length + max(ends, default=0):
            return "it is truncated"
    return None


def check_checkpoint(ckpt: Path) -> dict:
    """The trainer state of a complete checkpoint; one clear error naming the first missing or damaged file."""
    ckpt = Path(ckpt)
    marker = ckpt / TRAINER_STATE
    if not marker.is_file():
        raise ValueError(f"{ckpt} is not a complete checkpoint: it has no {TRAINER_STATE} (a checkpoint being written "
                         "when the run stopped); resume from an earlier one or from the run folder.")
    try:
        state = json.loads(marker.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{marker} is damaged ({err}); resume from another checkpoint of the run.") from None
    for name, size in (state.get("files") or {}).items():
        path = ckpt / name
        if not path.is_file():
            raise ValueError(f"checkpoint {ckpt} is incomplete: {path} is missing; resume from another checkpoint.")
        if path.stat().st_size != size:
            raise ValueError(f"checkpoint {ckpt} is damaged: {path} has {path.stat().st_size} bytes, {size} were "
                             "written; resume from another checkpoint.")
        reason = unreadable_reason(path)
        if reason:
            raise ValueError(f"checkpoint {ckpt} is damaged: {path}: {reason}; resume from another checkpoint.")
    return state


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    out = []
    for ckpt in sorted(folder.glob("step_*")):
        try:
            check_checkpoint(ckpt)
        except ValueError:
            continue
        out.append(ckpt)
    return out


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint folder (checked), or a run folder: the checkpoint `latest` names, else (saying so) the newest
    complete one. Anything else is one clear error."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--resume {path!r} does not exist; pass a checkpoint folder "
                                f"(<run>/{CHECKPOINTS}/step_N) or a run folder.")
    if (p / TRAINER_STATE).is_file() or p.parent.name == CHECKPOINTS:
        check_checkpoint(p)
        return p
    complete = complete_checkpoints(p)
    if not complete:
        raise ValueError(f"--resume {path!r} holds no complete checkpoint (no {CHECKPOINTS}/step_*/{TRAINER_STATE}); "
                         "pass a run folder written with checkpoints (every run saves one at its end, and with "
                         "--save-every N every N steps).")
    latest_file = p / CHECKPOINTS / LATEST
    named = p / CHECKPOINTS / latest_file.read_text().strip() if latest_file.is_file() else None
    if named is not None and named in complete:
        return named
    logger.warning("%s: %s; resuming from the newest complete checkpoint %s", p,
                   f"the latest checkpoint {named.name} is incomplete" if named else f"no {LATEST} pointer",
                   complete[-1].name)
    return complete[-1]
