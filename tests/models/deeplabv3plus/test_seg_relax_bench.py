"""scripts/bench/seg_relax_camvid.py --publish: the better relaxed variant is published with `adlr-hf publish`, its
`adlr-hf evaluate --task semantic-segmentation` result is in the card's model-index (and equals the bench's own
score of that model), and this run's table (mean ± std over seeds, per seed) is appended to the card."""

import importlib.util
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from models.deeplabv3plus.seg_train_utils import write_small_camvid

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench" / "seg_relax_camvid.py"


def _bench():
    spec = importlib.util.spec_from_file_location("seg_relax_camvid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_publish_puts_the_evaluation_and_the_table_in_the_card(tmp_path):
    data = write_small_camvid(tmp_path / "camvid", train=6, val=3)
    out = tmp_path / "published"
    threads = torch.get_num_threads()
    try:
        result = _bench().main(["--data", str(data), "--steps", "2", "--seeds", "0", "--batch-size", "2", "--crop",
                                "48", "--downscale", "1", "--threads", str(threads), "--publish", str(out)])
    finally:
        torch.set_num_threads(threads)
    best = result["best_relaxed"]
    assert best in ("relax", "relax_cu")
    assert result["published"]["variant"] == best and result["published"]["seed"] == 0
    # adlr-hf evaluate on the published folder scores the model the bench scored in memory.
    assert result["published"]["evaluate_mean_iou"] == pytest.approx(result["summary"][best]["per_seed"][0],
                                                                     abs=1e-6)

    card = ModelCard.load(out / "README.md")
    entries = [r for r in card.data.eval_results if r.metric_type == "mean_iou"]
    assert len(entries) == 1
    assert entries[0].dataset_name == "camvid" and entries[0].dataset_split == "val"
    assert entries[0].metric_value == pytest.approx(result["published"]["evaluate_mean_iou"])
    text = (out / "README.md").read_text()
    assert "## Cross entropy vs boundary relaxation vs relaxation + class-uniform sampling" in text
    assert "| variant | mIoU mean ± std | seed 0 |" in text
    for variant, label in (("ce", "(a) cross entropy"), ("relax", "(b) relaxation"),
                           ("relax_cu", "(c) relaxation + class-uniform")):
        row = result["summary"][variant]
        assert f"| {label} | {row['mean_iou_mean']:.4f} ± 0.0000 | {row['per_seed'][0]:.4f} |" in text
    assert "for 2 steps of batch 2" in text and "with seeds 0;" in text
