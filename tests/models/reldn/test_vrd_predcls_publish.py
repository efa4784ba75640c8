"""scripts/bench/vrd_predcls.py --publish on a tiny budget (a slice of the real VRD annotations, 3 steps, 2 seeds):
the better trained set-up's model is published with `adlr-hf publish`, its `relationship-detection` evaluation is in
the card's model-index and this run's table is appended to the card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models.reldn.test_reldn_training import VRD, vrd_slice

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench" / "vrd_predcls.py"
pytestmark = pytest.mark.skipif(not (VRD / "annotations_train.json").is_file(),
                                reason=f"the VRD annotations are not at {VRD} (../shared/data of the checkout)")


@pytest.mark.slow
def test_publish_puts_the_evaluation_and_the_table_into_the_card(tmp_path):
    data, out = vrd_slice(tmp_path / "vrd"), tmp_path / "published"
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--steps", "3", "--batch-size", "4",
                             "--seeds", "0", "1", "--publish", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(result.stdout.strip().splitlines()[-1])
    setup = bench["published"]["setup"]
    table = bench["table"]
    assert setup == max(("b_semantic_spatial", "c_semantic_spatial_contrastive"),
                        key=lambda name: (table[name]["R@50_top1"]["mean"], name.startswith("b_")))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "adlr_reldn" and config["use_visual"] is False
    assert config["use_contrastive_losses"] is setup.startswith("c_")

    card = (out / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"]
    entry = next(r for r in index if r["task"]["type"] == "relationship-detection")
    shown = {m["type"]: m["value"] for m in entry["metrics"]}
    assert shown["recall@50"] == pytest.approx(bench["published"]["evaluate_R@50"])
    # seed 0's model of the published set-up, evaluated on the whole (6-image) test split as the bench scored it
    assert 100 * shown["recall@50"] == pytest.approx(table[setup]["R@50_top1"]["runs"][0], abs=1e-3)

    assert "## VRD predicate classification without the visual module" in card
    assert "2 seed(s) (0 1)" in card and "3 steps of 4 images" in card and "on 6 test images" in card
    assert f"this model is set-up {setup[0]} " in card and "| set-up | R@50 top-1 | R@100 top-1 |" in card
    row = next(line for line in card.splitlines() if line.startswith("| (b) + spatial, cross entropy |"))
    b = table["b_semantic_spatial"]
    assert row.split(" | ")[1] == f"{b['R@50_top1']['mean']:.2f} ± {b['R@50_top1']['std']:.2f}"
    a_row = next(line for line in card.splitlines() if line.startswith("| (a) semantic"))
    assert a_row.split(" | ")[1] == f"{table['a_semantic']['R@50_top1']['mean']:.2f}"
    assert any(line.startswith("| (c) + spatial, + contrastive losses |") for line in card.splitlines())
