"""Every bad training command fails at once with one clear message, before any output is written."""

import json

import pytest

from adlr_hf.cli import main as cli_main
from adlr_hf.train import main as train_main


def _fails(capsys, argv, *needles, entry=train_main):
    assert entry(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    return err


def test_missing_data_path(tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, ["--data", str(tmp_path / "nope.txt"), "--out", str(out)], "nope.txt", "does not exist")
    assert not out.exists()


def test_deepspeed_batch_size_must_match_world_micro_accum(tmp_path, capsys):
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"train_batch_size": 7, "zero_optimization": {"stage": 1}}))
    out = tmp_path / "run"
    _fails(capsys, ["--deepspeed-config", str(config), "--micro-batch-size", "2", "--grad-accum", "2",
                    "--out", str(out)], "train_batch_size=7", "= 4", "\"auto\"")
    assert not out.exists()


def test_tp_must_divide_world(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    out = tmp_path / "run"
    _fails(capsys, ["--tp", "2", "--out", str(out)], "tp_size=2 does not divide the world size 3")
    assert not out.exists()


def test_zero3_with_tp_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    _fails(capsys, ["--tp", "2", "--deepspeed-config", "configs/deepspeed/zero3.json", "--out", str(tmp_path / "r")],
           "ZeRO stage 3", "--tp 2")


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hello")
    out = tmp_path / "run"
    _fails(capsys, ["--resume", str(tmp_path / "random"), "--out", str(out)], "holds no complete checkpoint",
           "trainer_state.json")
    _fails(capsys, ["--resume", str(tmp_path / "missing"), "--out", str(out)], "does not exist")
    assert not out.exists()


def test_cli_train_forwards_to_the_same_entry_point(tmp_path, capsys):
    _fails(capsys, ["train", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r")], "nope.jsonl",
           entry=cli_main)


def test_unknown_model_variant(tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, ["--model", "megatron-gpt-355M", "--out", str(out)], "unknown model variant", "megatron-gpt-355m")
    assert not out.exists()


@pytest.mark.parametrize("flags, named", [(["--model", "pd-resnet-tiny"], "PDResNet")])
def test_activation_checkpointing_on_a_model_without_it(tmp_path, capsys, flags, named):
    out = tmp_path / "run"
    _fails(capsys, [*flags, "--activation-checkpointing", "--out", str(out)], "--activation-checkpointing", named,
           "cannot recompute")
    assert not out.exists()
