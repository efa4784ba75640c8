"""The launch a plan describes: the `deepspeed` command (and the `torchrun` one), the DeepSpeed hostfile for its
nodes, the checked DeepSpeed config, and `launch.sh` tying them together (written by `adlr-hf plan --out DIR`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .layout import Layout

MASTER_PORT = 29500
_PLACEHOLDERS = ("$DATA", "$OUT")


def host_names(layout: Layout) -> list[str]:
    return [f"node-{i:02d}" for i in range(layout.nodes)]


def hostfile_text(layout: Layout) -> str:
    """DeepSpeed's hostfile: one `host slots=N` line per node (replace the names with your machines')."""
    return "".join(f"{name} slots={layout.gpus_per_node}\n" for name in host_names(layout))


def training_flags(model: str, layout: Layout, overrides: list[str], ds_config_path: str) -> list[str]:
    flags = ["--model", model, "--tp", str(layout.tp), "--micro-batch-size", str(layout.micro_batch_size),
             "--grad-accum", str(layout.grad_accum), "--seq-len", str(layout.seq_len),
             "--deepspeed-config", ds_config_path]
    if layout.activation_checkpointing:
        flags.append("--activation-checkpointing")
    for item in overrides:
        flags += ["--set", item]
    return flags + ["--data", "$DATA", "--out", "$OUT"]


def _join(words: list[str]) -> str:
    return " ".join(f'"{w}"' if w in _PLACEHOLDERS or w.startswith("$HERE/") else shlex.quote(w) for w in words)


def deepspeed_command(flags: list[str], layout: Layout, hostfile: str = "hostfile") -> list[str]:
    if layout.nodes == 1:
        launcher = ["deepspeed", "--num_gpus", str(layout.gpus_per_node)]
    else:
        launcher = ["deepspeed", "--hostfile", hostfile, "--master_addr", host_names(layout)[0], "--master_port",
                    str(MASTER_PORT)]
    return [*launcher, "--module", "adlr_hf.train", *flags]


def torchrun_command(flags: list[str], layout: Layout) -> list[str]:
    """Run on every node (the same line everywhere; c10d rendezvous at the first node)."""
    if layout.nodes == 1:
        return ["torchrun", "--nproc-per-node", str(layout.gpus_per_node), "-m", "adlr_hf.train", *flags]
    return ["torchrun", "--nnodes", str(layout.nodes), "--nproc-per-node", str(layout.gpus_per_node),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{host_names(layout)[0]}:{MASTER_PORT}", "--rdzv-id",
            "adlr-hf", "-m", "adlr_hf.train", *flags]


def commands(model: str, layout: Layout, overrides: list[str], folder: str | None) -> dict:
    """The launch commands as printed: with `folder`, naming the files `--out` writes there."""
    prefix = f"{folder.rstrip('/')}/" if folder else ""
    flags = training_flags(model, layout, overrides, f"{prefix}ds_config.json")
    return {"deepspeed": _join(deepspeed_command(flags, layout, f"{prefix}hostfile")),
            "torchrun": _join(torchrun_command(flags, layout))}


def launch_script(model: str, layout: Layout, overrides: list[str]) -> str:
    flags = training_flags(model, layout, overrides, "$HERE/ds_config.json")
    command = _join(deepspeed_command(flags, layout, "$HERE/hostfile"))
    return ("#!/usr/bin/env bash\n"
            f"# Written by `adlr-hf plan`: {model} at TP={layout.tp} × DP={layout.dp} on {layout.nodes} node(s) × "
            f"{layout.gpus_per_node} GPUs.\n"
            "# Set DATA (the training files) and OUT (the run folder); edit the host names in ./hostfile.\n"
            "set -euo pipefail\n"
            'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n'
            'DATA="${DATA:?set DATA to the training data}"\n'
            'OUT="${OUT:?set OUT to the run folder}"\n'
            f"exec {command}\n")


def write_plan_folder(folder: Path, plan: dict, ds_config: dict, layout: Layout, model: str,
                      overrides: list[str]) -> None:
    """plan.json, ds_config.json, hostfile and launch.sh, written atomically (a failure leaves the old folder)."""
    from ..atomic import write_atomically

    check_out_folder(folder)

    def build(tmp: Path) -> None:
        (tmp / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
        (tmp / "ds_config.json").write_text(json.dumps(ds_config, indent=2) + "\n")
        (tmp / "hostfile").write_text(hostfile_text(layout))
        script = tmp / "launch.sh"
        script.write_text(launch_script(model, layout, overrides))
        script.chmod(0o755)

    write_atomically(folder, build)


def check_out_folder(folder) -> None:
    """The --out checks, made before any work (so a bad folder writes nothing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {str(folder)!r} is a file; pass a folder path.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "plan.json").is_file():
        raise ValueError(f"--out {str(folder)!r} is not empty and holds no plan.json; choose a new folder.")
