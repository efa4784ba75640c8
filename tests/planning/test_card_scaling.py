"""The model card's "scaling" section: a published Megatron folder's card plans its own configuration at the paper's
layout (`FamilySpec.paper_scale`), labelled as computed by `adlr-hf plan`; the writer names no family."""

from pathlib import Path

import pytest

import adlr_hf  # noqa: F401 - registers the families
from hub.hub_utils import write_tiny_gpt_folder
from adlr_hf.hub.publish import publish
from adlr_hf.planning.paper_scale import scaling_section
from adlr_hf.registry import families, get_config, get_family


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    write_tiny_gpt_folder(folder)
    out = tmp_path_factory.mktemp("pub") / "card"
    publish(folder, out, repo_id="nvidia/tiny-scaling", inference_runs=1)
    return out


def test_published_gpt_card_has_the_scaling_section(published):
    text = (published / "README.md").read_text()
    assert "## Scaling (computed)" in text
    section = text[text.index("## Scaling (computed)"):]
    section = section[: section.index("\n## ", 1)]
    assert "Computed by `adlr-hf plan`" in section and "not measured" in section
    # 4 heads do not split 8 ways: TP=4, with DP and the micro-batch scaled to keep 512 GPUs and a batch of 512.
    assert "| layout | TP=4 × DP=128 = 512 GPUs (32 nodes × 16); micro-batch 4 × accumulation 1 × DP 128 = 512 " \
           "sequences of 64 tokens |" in section
    assert "TP=4 instead of the paper's 8" in section and "num_attention_heads=4 is not divisible" in section
    assert "sequences of 64 tokens (the model's positions), not the paper's 1024" in section
    assert "fits in a 32 GiB GPU" in section and "activation checkpointing" in section
    assert "adlr-hf plan --model MODEL_DIR --tp 4 --dp 128 --micro-batch-size 4 --grad-accum 1 --seq-len 64 " \
           "--deepspeed-config configs/deepspeed/zero0_bf16.json --gpus-per-node 16 --activation-checkpointing " \
           "--gpu-memory-gib 32" in section


def test_paper_layouts_plan_the_papers_largest_models_unchanged():
    gpt = "\n".join(scaling_section(get_config("megatron-gpt-8.3b"), get_family("megatron_gpt").paper_scale))
    assert "| layout | TP=8 × DP=64 = 512 GPUs (32 nodes × 16); micro-batch 8 × accumulation 1 × DP 64 = 512 " \
           "sequences of 1,024 tokens |" in gpt
    assert "| parameters | 1,043,549,184 of 8,314,143,744 |" in gpt and "Adjusted" not in gpt
    assert "fits in a 32 GiB GPU" in gpt
    bert = "\n".join(scaling_section(get_config("megatron-bert-3.9b"), get_family("megatron_bert").paper_scale))
    assert "TP=4 × DP=128 = 512 GPUs" in bert and "1,024 sequences of 512 tokens" in bert and "Adjusted" not in bert


def test_the_card_writer_names_no_family():
    source = (Path(adlr_hf.__file__).parent / "hub" / "card.py").read_text().lower()
    for spec in families():
        assert spec.name not in source and spec.slug not in source, spec.name
