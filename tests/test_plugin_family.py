"""A family defined outside the package plugs in without touching adlr_hf: `tests/plugin_family/toy_family` (config,
model with a loss, spec, task) is registered through the public API (`ADLR_HF_PLUGINS=toy_family`), then trained with
`adlr-hf train` in one process and under the `deepspeed` launcher at DP=2, published and evaluated."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).resolve().parent / "plugin_family"
CLI = Path(sys.executable).with_name("adlr-hf")


def _run(args, cwd):
    env = {**os.environ, "ADLR_HF_PLUGINS": "toy_family", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == "train"], [r for r in records if r["split"] == "eval"]


def test_a_family_outside_the_package_trains_publishes_and_evaluates(tmp_path):
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        from toy_family.task_toy import write_rows
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    data = write_rows(tmp_path / "rows.jsonl")
    flags = ["--model", "toy-tiny", "--data", str(data), "--micro-batch-size", "8", "--steps", "30", "--lr", "3e-2",
             "--eval-fraction", "0.25", "--eval-every", "10", "--no-progress", "--seed", "3"]

    listed = _run(["list"], tmp_path).stdout
    assert "toy-tiny" in listed and "toy " in listed

    _run(["train", *flags, "--out", str(tmp_path / "one")], tmp_path)
    launched = _run(["train", "--nproc", "2", *flags, "--out", str(tmp_path / "dp2")], tmp_path)
    assert "--num_gpus 2 --module adlr_hf.train" in launched.stdout
    for run, dp in (("one", 1), ("dp2", 2)):
        info = json.loads((tmp_path / run / "run_info.json").read_text())
        assert (info["task"], info["dp"], info["engine"]) == ("toy-regression", dp, "deepspeed")
        losses, evals = _losses(tmp_path / run)
        assert len(losses) == 30 and sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses
        assert [e["step"] for e in evals] == [10, 20, 30] and all("mse" in e for e in evals)
        assert (tmp_path / run / "config" / "config.json").is_file()  # the run described itself at the start

    _run(["publish", str(tmp_path / "one"), str(tmp_path / "pub")], tmp_path)
    card = (tmp_path / "pub" / "README.md").read_text()
    assert "Toy regressor" in card and "toy-regression" in card and "toy-mse" in card
    assert (tmp_path / "pub" / "modeling_toy.py").is_file()  # the published folder carries the plug-in's code

    out = tmp_path / "eval.json"
    _run(["evaluate", str(tmp_path / "pub"), "--task", "toy-mse", "--data", str(data), "--json", str(out),
          "--update-card"], tmp_path)
    result = json.loads(out.read_text())
    # The same MSE computed here on the published weights.
    probe = f"""
import json, sys, torch
sys.path.insert(0, {str(PLUGIN_DIR)!r})
import adlr_hf
from transformers import AutoModel
from toy_family.task_toy import collate, load_rows
model = AutoModel.from_pretrained({str(tmp_path / 'pub')!r}).eval()
batch = collate(list(load_rows({str(data)!r})))
with torch.no_grad():
    print(json.dumps(float(((model(features=batch["features"]).predictions.double() - batch["labels"].double()) ** 2).mean())))
"""
    env = {**os.environ, "ADLR_HF_PLUGINS": "toy_family", "PYTHONPATH": str(PLUGIN_DIR)}
    direct = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert direct.returncode == 0, direct.stderr[-3000:]
    assert result["metrics"]["mse"] == pytest.approx(json.loads(direct.stdout.strip().splitlines()[-1]), rel=1e-9)
    assert "Mean squared error" in (tmp_path / "pub" / "README.md").read_text()


def test_nothing_in_the_package_names_the_plugin():
    names = ("toy_family", "ToyRegressor", "toy-regression", "toy_regressor")
    for path in (REPO / "adlr_hf").rglob("*.py"):
        text = path.read_text()
        assert not any(name in text for name in names), path
