"""What a run shows and leaves behind: a JSONL metrics log, a loss-curve PNG and an end-of-run summary."""

from __future__ import annotations

import io
import json
import platform
import resource
import time
from pathlib import Path

import torch

from ..atomic import write_bytes_atomically


class MetricsLog:
    """Append-only JSONL of training and evaluation records (rank 0 writes)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        self.records: list[dict] = []
        if enabled and path.exists():
            self.records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """On resume, drop records of steps the resumed run will redo."""
        self.records = [r for r in self.records if r.get("step", 0) <= step]
        if self.enabled:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: dict) -> None:
        record = {"time": round(time.time(), 3), **record}
        self.records.append(record)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def plot_loss_curve(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if r.get("split") == "train"]
    evals = [(r["step"], r["loss"]) for r in records if r.get("split") == "eval"]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval", ms=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes_atomically(path, buffer.getvalue())


def peak_memory_mib(device) -> float:
    """Peak memory of this process: accelerator memory on a GPU, resident set size on CPU."""
    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    import os

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def format_summary(info: dict, per_rank_memory: list[float]) -> str:
    unit = info.get("unit", "tokens")
    lines = [
        "─" * 60,
        f" model        {info['model']}  ({info['parameters']:,} parameters)",
        f" parallelism  TP={info['tp']} × DP={info['dp']}  engine={info['engine']}"
        + (f" ZeRO-{info['zero_stage']}" if info.get("zero_stage") is not None else ""),
        f" steps        {info['steps']}  {unit} seen {info[unit]:,}",
        f" throughput   {info[unit + '_per_second']:,.0f} {unit}/s  ({info['seconds']:.1f} s)",
        f" final loss   {info['final_loss']:.4f}" + (f"  eval loss {info['eval_loss']:.4f}"
                                                    if info.get("eval_loss") is not None else ""),
        " peak memory  " + ", ".join(f"rank{r}: {m:,.0f} MiB" for r, m in enumerate(per_rank_memory)),
        f" output       {info['out']}",
        "─" * 60,
    ]
    return "\n".join(lines)
