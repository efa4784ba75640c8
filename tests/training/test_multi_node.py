"""Multi-node training, simulated on one machine: two `torchrun --nnodes 2` launchers (one rank each, c10d
rendezvous on localhost, TP=2 across the two "nodes") train exactly as one `torchrun --nproc-per-node 2` launcher
does: the same loss at every step (docs/multi_node.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dist_utils import free_port
from train_utils import common_flags, train_losses, write_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}


def _start(cmd):
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, what):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{what} failed: {out[-2000:]}{err[-4000:]}"


def test_two_launcher_nodes_train_like_one(tmp_path):
    corpus = write_corpus(tmp_path)
    flags = lambda out: [*common_flags(corpus, tmp_path / out, steps=4), "--tp", "2", "--no-export"]  # noqa: E731
    endpoint = f"localhost:{free_port()}"
    nodes = [_start(["torchrun", "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
                     "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes",
                     "-m", "adlr_hf.train", *flags("two_nodes")]) for node in (0, 1)]
    for node, proc in enumerate(nodes):
        _finish(proc, f"node {node}")
    _finish(_start(["torchrun", "--nproc-per-node", "2", "-m", "adlr_hf.train", *flags("one_node")]), "one node")
    for run in ("two_nodes", "one_node"):
        info = json.loads((tmp_path / run / "run_info.json").read_text())
        assert (info["tp"], info["dp"], info["world_size"]) == (2, 1, 2), run
    two, one = train_losses(tmp_path / "two_nodes"), train_losses(tmp_path / "one_node")
    assert len(two) == len(one) == 4
    assert two == one, f"two launchers {two} vs one launcher {one}"  # the same ranks doing the same sums: exact
