"""Run checkpoints: the engine's own files plus what makes a resume bit-exact (step, data position, RNG)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from ..parallel import get_rng_tracker

TRAINER_STATE = "trainer_state.json"
CHECKPOINTS = "checkpoints"
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


def rng_file(checkpoint_dir: Path, rank: int) -> Path:
    return checkpoint_dir / f"rng_state_rank{rank}.pt"


def capture_rng(generators: dict | None = None) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "tracker": get_rng_tracker().get_states(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict, generators: dict | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    get_rng_tracker().set_states(state["tracker"])
    for name, generator in (generators or {}).items():
        generator.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_rng(checkpoint_dir: Path, rank: int, generators: dict | None = None) -> None:
    # pickle (not weights_only) for python/numpy RNG tuples; this file is written and read by the run itself.
    torch.save(capture_rng(generators), rng_file(checkpoint_dir, rank))


def load_rng(checkpoint_dir: Path, rank: int, generators: dict | None = None) -> None:
    path = rng_file(checkpoint_dir, rank)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint was written by a run with another number of "
                                "processes; resume with the same launcher settings.")
    restore_rng(torch.load(path, weights_only=False), generators)


def write_trainer_state(checkpoint_dir: Path, state: dict) -> None:
    (checkpoint_dir / TRAINER_STATE).write_text(json.dumps(state, indent=2))


def read_trainer_state(checkpoint_dir: Path) -> dict:
    return json.loads((checkpoint_dir / TRAINER_STATE).read_text())


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint folder, or a run folder whose newest checkpoint is used; anything else is an error."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--resume {path!r} does not exist; pass a checkpoint folder "
                                f"(<run>/{CHECKPOINTS}/step_N) or a run folder.")
    if (p / TRAINER_STATE).is_file():
        return p
    found = sorted((p / CHECKPOINTS).glob(f"step_*/{TRAINER_STATE}")) if (p / CHECKPOINTS).is_dir() else []
    if not found:
        raise ValueError(f"--resume {path!r} is not a checkpoint: it has no {TRAINER_STATE} and no "
                         f"{CHECKPOINTS}/step_*/ inside; pass a folder written by `adlr-hf train --save-every`.")
    return found[-1].parent
