"""Real crashes under the real launchers, then an exact resume (the default flags: dropout on, the cosine schedule
with warm-up, evaluation on):

- the `deepspeed` launcher at TP=2: the whole process group SIGKILLed right after a checkpoint is complete, and
  again while a checkpoint is being written (its `.partial` folder is left behind and ignored);
- `torchrun` at DP=2 (Accelerate): SIGTERM to the launcher stops the job at a step boundary with a checkpoint, a
  non-zero exit and a resume hint;
- `torchrun` at DP=2 (DeepSpeed): SIGKILL to one rank makes the whole job exit non-zero within a bounded time.
Each interrupted run is resumed with `--resume` and must equal an uninterrupted run record for record and weight for
weight."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from resume_utils import assert_same_run
from train_utils import write_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _flags(corpus, out, *extra):
    return ["--data", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--micro-batch-size", "2", "--steps",
            "12", "--warmup-steps", "2", "--eval-every", "3", "--save-every", "3", "--seed", "9", "--no-progress",
            "--out", str(out), *extra]


def _env():
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}


def _start(cmd):
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _wait_for(path: Path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def _run(cmd):
    code, out, err = _finish(_start(cmd))
    assert code == 0, out[-2000:] + err[-4000:]
    return out, err


def test_deepspeed_launcher_killed_at_and_during_a_checkpoint_resumes_exactly(tmp_path):
    corpus = write_corpus(tmp_path)
    launch = ["deepspeed", "--num_gpus", "2", "--module", "adlr_hf.train", "--tp", "2"]
    _run([*launch, *_flags(corpus, tmp_path / "straight")])

    # Killed (the launcher's whole process group, SIGKILL) right after the step-3 checkpoint is complete.
    run = tmp_path / "killed"
    proc = _start([*launch, *_flags(corpus, run)])
    _wait_for(run / "checkpoints" / "step_00000003" / "trainer_state.json", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _run([*launch, *_flags(corpus, run, "--resume")])
    assert_same_run(tmp_path / "straight", run)

    # Killed while a checkpoint is being written (its .partial folder exists): the checkpoint before it stays the
    # latest complete one. With a checkpoint every step the run spends a good share of its time saving, so the
    # watcher catches one; a run that ends first is started again (at most three times).
    for attempt in range(3):
        run = tmp_path / f"killed_while_saving{attempt}"
        proc = _start([*launch, *_flags(corpus, run, "--save-every", "1")])
        _wait_for(run / "checkpoints" / "step_00000003" / "trainer_state.json", proc)
        partial = _catch_partial(run / "checkpoints", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if partial is not None and partial.exists():  # not renamed between the look and the kill
            break
    assert partial is not None and partial.exists(), "no checkpoint was caught while being written in three runs"
    step = int(partial.name.split("_")[1].split(".")[0])
    assert (run / "checkpoints" / "latest").read_text().strip() < f"step_{step:08d}"
    _run([*launch, *_flags(corpus, run, "--save-every", "1", "--resume", str(run))])
    assert_same_run(tmp_path / "straight", run)


def _catch_partial(folder: Path, proc):
    """The first `.step_N.partial` folder (N > 3) seen while `proc` runs, or None when it ended first."""
    while proc.poll() is None:
        found = [p for p in folder.glob(".step_*.partial") if int(p.name.split("_")[1].split(".")[0]) > 3]
        if found:
            return found[0]
        time.sleep(0.002)
    return None


def test_torchrun_sigterm_stops_with_a_checkpoint_and_a_dead_rank_fails_the_job(tmp_path):
    corpus = write_corpus(tmp_path)
    torchrun = ["torchrun", "--nproc-per-node", "2", "-m", "adlr_hf.train", "--collective-timeout", "60"]
    for engine in ("accelerate", "deepspeed"):
        _run([*torchrun, *_flags(corpus, tmp_path / f"straight-{engine}", "--engine", engine)])

    # SIGTERM to the launcher (a scheduler's pre-emption): every rank saves at the same step boundary, then exits.
    run = tmp_path / "stopped"
    proc = _start([*torchrun, *_flags(corpus, run, "--engine", "accelerate")])
    _wait_for(run / "checkpoints" / "step_00000003" / "trainer_state.json", proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = _finish(proc, timeout=120)
    assert code != 0
    assert "SIGTERM" in err and "--resume" in err, err[-3000:]
    stopped_at = int((run / "checkpoints" / "latest").read_text().strip().split("_")[1])
    assert 3 <= stopped_at < 12
    _run([*torchrun, *_flags(corpus, run, "--engine", "accelerate", "--resume")])
    assert_same_run(tmp_path / "straight-accelerate", run)

    # One rank SIGKILLed after the step-3 checkpoint: the job fails as a whole, promptly, and resumes exactly.
    run = tmp_path / "rank_died"
    proc = _start([*torchrun, *_flags(corpus, run, "--engine", "deepspeed")])
    _wait_for(run / "checkpoints" / "step_00000003" / "trainer_state.json", proc)
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "adlr_hf.train" in " ".join(p.cmdline())]
    assert len(workers) == 2, [p.cmdline() for p in workers]
    started = time.monotonic()
    workers[1].kill()
    code, _, err = _finish(proc, timeout=180)
    assert code != 0 and time.monotonic() - started < 120, err[-3000:]
    _run([*torchrun, *_flags(corpus, run, "--engine", "deepspeed", "--resume")])
    assert_same_run(tmp_path / "straight-deepspeed", run)
