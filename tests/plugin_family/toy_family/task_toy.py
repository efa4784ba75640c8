"""The toy regression task: rows {"features": [...], "label": y} in a JSON-lines file; mean squared error, the same
function at training time and in `adlr-hf evaluate --task toy-mse`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import torch

from adlr_hf.tasks import EvalMetric, Evaluation, ModelIndexEntry, Task, TaskRun


def mean_squared_error(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((predictions.double() - labels.double()) ** 2).mean())


def load_rows(path) -> datasets.Dataset:
    if not Path(path).is_file():
        raise FileNotFoundError(f"--data {path!r} is not a JSON-lines file; pass one row per line")
    return datasets.Dataset.from_json(str(path))


def collate(rows: list[dict]) -> dict:
    return {"features": torch.tensor([r["features"] for r in rows], dtype=torch.float32),
            "labels": torch.tensor([r["label"] for r in rows], dtype=torch.float32)}


class SquaredErrorMetric(EvalMetric):
    def reset(self):
        self.predictions, self.labels = [], []

    def add_batch(self, outputs, batch):
        self.predictions.append(outputs.predictions.detach().cpu())
        self.labels.append(batch["labels"].cpu())

    def compute(self):
        return {"mse": mean_squared_error(torch.cat(self.predictions), torch.cat(self.labels))}


def evaluate_from_args(args) -> dict:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(args.model_dir).eval()
    rows = load_rows(args.data)
    batch = collate(list(rows))
    with torch.no_grad():
        predictions = model(features=batch["features"]).predictions
    return {"task": args.task, "model": str(args.model_dir), "data": str(args.data), "split": "test",
            "metrics": {"mse": mean_squared_error(predictions, batch["labels"]), "num_examples": len(rows)}}


class ToyRegressionTask(Task):
    name = "toy-regression"
    description = "regression on JSON-lines rows"
    auto_class_name = "AutoModel"
    unit = "examples"
    evaluations = (Evaluation("toy-mse", "toy_family.task_toy:evaluate_from_args", "a JSON-lines file",
                              ModelIndexEntry("tabular-regression", "Regression", "", "", None, "test",
                                              {"mse": ("mse", "Mean squared error")})),)

    def check_args(self, args, config):
        if not args.data or len(args.data) != 1:
            raise ValueError("toy regression needs --data <one JSON-lines file>")

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        rows = load_rows(args.data[0])
        held = max(1, int(len(rows) * args.eval_fraction)) if args.eval_fraction > 0 else 0
        train = rows.select(range(len(rows) - held))
        evaluation = rows.select(range(len(rows) - held, len(rows))) if held else None
        return TaskRun(config, train, evaluation, collate, 1, None, [str(args.data[0])],
                       metric=SquaredErrorMetric() if evaluation is not None else None)


def write_rows(path: Path, n: int = 256, seed: int = 0) -> Path:
    """y = w·x + 0.05 noise with a fixed w: a model learns it within a few steps."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([0.5, -1.0, 0.25, 2.0]) + 0.05 * torch.randn(n, generator=generator)
    path.write_text("".join(json.dumps({"features": a, "label": b}) + "\n" for a, b in zip(x.tolist(), y.tolist())))
    return path
