"""Crash-safe checkpoints in one process: the layout (complete folders, `latest` moved last, a listed manifest), a
checkpoint being written when a run died is ignored, a damaged one is refused naming the file, `--resume` with no
value, `--save-total-limit`, schedule changes refused, a final checkpoint with the default flags, and a failing final
evaluation that leaves the model and checkpoint in place."""

import json
import shutil

import pytest
from resume_utils import metrics
from train_utils import write_corpus

from adlr_hf.train import main as train_main
from adlr_hf.training.checkpoint import LATEST, TRAINER_STATE, check_checkpoint, complete_checkpoints, resolve_checkpoint


def _flags(corpus, out, steps=6, *extra):
    return ["--data", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--micro-batch-size", "2",
            "--steps", str(steps), "--warmup-steps", "2", "--eval-every", "2", "--seed", "5", "--no-progress",
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train_main(_flags(corpus, out, 6, "--save-every", "2", "--save-total-limit", "2")) == 0
    return out


def test_layout_latest_manifest_and_total_limit(run_dir):
    ckpts = complete_checkpoints(run_dir)
    assert [c.name for c in ckpts] == ["step_00000004", "step_00000006"]  # --save-total-limit 2 removed step 2
    assert (run_dir / "checkpoints" / LATEST).read_text().strip() == "step_00000006"
    state = check_checkpoint(ckpts[-1])
    assert state["step"] == 6 and state["schedule"]["steps"] == 6
    assert {"mp_rank_00_model_states.pt", "rng_state_rank0.pt"} <= set(state["files"])
    assert not list((run_dir / "checkpoints").glob(".*partial"))


def test_partial_and_damaged_checkpoints(run_dir, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    # A crash while writing step 8 leaves its .partial folder; a crash after the rename but before `latest` moved
    # cannot happen (the marker is written before the rename), so a folder without the marker is also incomplete.
    (run / "checkpoints" / ".step_00000008.partial").mkdir()
    (run / "checkpoints" / ".step_00000008.partial" / "mp_rank_00_model_states.pt").write_bytes(b"half")
    assert resolve_checkpoint(str(run)).name == "step_00000006"
    # `latest` naming a damaged checkpoint: the run falls back to the newest complete one and says so.
    model_states = run / "checkpoints" / "step_00000006" / "mp_rank_00_model_states.pt"
    model_states.write_bytes(model_states.read_bytes()[:1000])
    with caplog.at_level("WARNING"):
        assert resolve_checkpoint(str(run)).name == "step_00000004"
    assert "step_00000006 is incomplete" in caplog.text
    with pytest.raises(ValueError, match="mp_rank_00_model_states.pt has 1000 bytes"):
        resolve_checkpoint(str(run / "checkpoints" / "step_00000006"))
    (run / "checkpoints" / "step_00000004" / TRAINER_STATE).unlink()
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resolve_checkpoint(str(run))


def test_resume_refuses_damaged_and_mismatched_checkpoints_before_writing(run_dir, corpus, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    rng = run / "checkpoints" / "step_00000006" / "rng_state_rank0.pt"
    rng.write_bytes(b"not a torch file" + b"x" * (rng.stat().st_size - 16))
    before = sorted(p.name for p in run.rglob("*"))
    assert train_main(_flags(corpus, run, 6, "--resume", str(run / "checkpoints" / "step_00000006"))) == 2
    assert "rng_state_rank0.pt: it is not a complete torch file" in capsys.readouterr().err
    assert train_main(_flags(corpus, run, 9, "--resume", str(run / "checkpoints" / "step_00000004"))) == 2
    err = capsys.readouterr().err
    assert "--steps 6 -> 9" in err and "--allow-schedule-change" in err
    assert train_main(_flags(corpus, run, 6, "--tp", "2", "--resume")) == 2
    assert sorted(p.name for p in run.rglob("*")) == before


def test_resume_without_a_value_continues_the_out_folder_exactly(run_dir, corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    shutil.rmtree(run / "model")
    assert train_main(_flags(corpus, run, 6, "--save-every", "2", "--save-total-limit", "2", "--resume")) == 0
    assert metrics(run) == metrics(run_dir)


def test_default_flags_save_a_final_checkpoint_and_a_failed_evaluation_keeps_the_model(corpus, tmp_path,
                                                                                          monkeypatch, capsys):
    from adlr_hf.training.trainer import Trainer

    def broken(self):
        raise OSError("disk read error (simulated)")

    monkeypatch.setattr(Trainer, "final_evaluation", broken)
    out = tmp_path / "run"
    assert train_main(_flags(corpus, out, 3)) == 1
    err = capsys.readouterr().err
    assert "the final evaluation failed (OSError: disk read error (simulated))" in err
    assert [c.name for c in complete_checkpoints(out)] == ["step_00000003"]
    assert (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "run_info.json").read_text())["final_evaluation_error"].startswith("OSError")
