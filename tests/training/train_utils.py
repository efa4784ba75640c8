"""Shared pieces of the training tests: a small corpus, common flags and metrics readers."""

from __future__ import annotations

import json
from pathlib import Path


def write_corpus(folder: Path) -> Path:
    """A small, repetitive corpus (a model learns it within a few steps)."""
    lines = [f"The {animal} jumps over the {thing} number {i % 7}." for i, (animal, thing) in
             enumerate([("fox", "dog"), ("cat", "fence"), ("cow", "moon"), ("bird", "river")] * 60)]
    path = folder / "corpus.txt"
    path.write_text("\n\n".join(lines) + "\n")
    return path


def common_flags(corpus: Path, out: Path, steps: int = 6, lr: float = 3e-3) -> list[str]:
    return ["--data", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--micro-batch-size", "2",
            "--steps", str(steps), "--lr", str(lr), "--lr-schedule", "constant", "--seed", "7", "--out", str(out),
            "--no-progress", "--eval-fraction", "0", "--weight-decay", "0",
            "--set", "hidden_dropout=0", "--set", "attention_dropout=0", "--set", "embedding_dropout=0"]


def train_losses(run_dir: Path) -> list[float]:
    records = [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if l.strip()]
    return [r["loss"] for r in records if r["split"] == "train"]


def run_all(rank, runs):
    """Worker: run several trainings one after another in the same processes (one process group)."""
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    for argv in runs:
        run(build_parser().parse_args(argv))
