"""Shared pieces of the training tests: a small corpus, common flags and metrics readers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GOEMOTIONS = SHARED_DATA / "goemotions"
CIFAR = SHARED_DATA / "cifar10-jpeg-subset"


def write_corpus(folder: Path) -> Path:
    """A small, repetitive corpus (a model learns it within a few steps)."""
    lines = [f"The {animal} jumps over the {thing} number {i % 7}." for i, (animal, thing) in
             enumerate([("fox", "dog"), ("cat", "fence"), ("cow", "moon"), ("bird", "river")] * 60)]
    path = folder / "corpus.txt"
    path.write_text("\n\n".join(lines) + "\n")
    return path


def write_documents(folder: Path) -> Path:
    """Paragraphs of three sentences (sentence-order prediction needs at least two per document)."""
    animals = ["fox", "cat", "cow", "bird", "dog", "owl"]
    docs = [f"The {a} jumps over the fence number {i % 7}. Then the {a} runs home. The {a} sleeps."
            for i, a in enumerate(animals * 40)]
    path = folder / "docs.txt"
    path.write_text("\n\n".join(docs) + "\n")
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


def goemotions_subset(folder: Path, train: int = 320, dev: int = 96, test: int = 64) -> Path:
    """The first rows of each split of the real GoEmotions files, with the label files and a corpus of the texts."""
    folder.mkdir(parents=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", dev), ("test.tsv", test)):
        lines = (GOEMOTIONS / name).read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
        (folder / name).write_text("".join(lines), encoding="utf-8")
    for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
        shutil.copy(GOEMOTIONS / name, folder / name)
    texts = [line.split("\t")[0] for line in (folder / "train.tsv").read_text(encoding="utf-8").splitlines()]
    (folder / "corpus.txt").write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    return folder


def cifar_subset(folder: Path, train_per_class: int = 32, test_per_class: int = 10) -> Path:
    """The first images of each class of the shared CIFAR-10 subset (sorted names): real JPEGs, few enough for a
    test."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted((CIFAR / split).iterdir()):
            out = folder / split / class_dir.name
            out.mkdir(parents=True)
            for image in sorted(class_dir.glob("*.jpg"))[:count]:
                shutil.copy2(image, out / image.name)
    return folder
