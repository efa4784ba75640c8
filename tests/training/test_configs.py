"""The shipped launch configs are valid and resolve against the command-line batch settings."""

from pathlib import Path

import pytest
import yaml

from adlr_hf.training.engines import load_deepspeed_config, resolve_batch_config, zero_stage

REPO = Path(__file__).resolve().parents[2]
DS_CONFIGS = sorted((REPO / "configs" / "deepspeed").glob("*.json"))


@pytest.mark.parametrize("path", DS_CONFIGS, ids=lambda p: p.name)
def test_deepspeed_configs_resolve(path):
    config = resolve_batch_config(load_deepspeed_config(str(path)), micro_batch=4, grad_accum=2, dp_size=3, clip=1.0)
    assert config["train_batch_size"] == 24
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"]) == (4, 2)
    assert zero_stage(config) == int(path.stem[4])
    assert config.get("bf16", {}).get("enabled", False) == path.stem.endswith("_bf16")


def test_all_stages_ship_fp32_and_bf16():
    assert {p.stem for p in DS_CONFIGS} == {f"zero{s}{v}" for s in range(4) for v in ("", "_bf16")}


def test_explicit_config_values_must_agree():
    with pytest.raises(ValueError, match="train_micro_batch_size_per_gpu=8 but the command line asks for 4"):
        resolve_batch_config({"train_micro_batch_size_per_gpu": 8}, 4, 1, 1, 1.0)


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_launchable(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in {"MULTI_GPU", "DEEPSPEED"}
    assert config["num_processes"] >= 2 and config["num_machines"] == 1
