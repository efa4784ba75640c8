"""Security properties, checked: every `torch.load` in the package passes `weights_only=True`; nothing passes
`trust_remote_code=True` on a user's behalf; published and exported weights are safetensors only; a model folder's
own Python files are never executed by adlr_hf (only transformers' remote-code path runs them, when the user asks)."""

import ast
import json
from pathlib import Path

import pytest
import torch

from adlr_hf import get_config
from adlr_hf.cli import main as cli

PACKAGE = Path(__file__).resolve().parents[1] / "adlr_hf"


def _calls(name_check):
    """(file, line, call) for every call in the package whose callee `name_check` accepts."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_symlink():
            continue  # the same file as its target, scanned there
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and name_check(ast.unparse(node.func)):
                found.append((path.relative_to(PACKAGE.parent), node.lineno, node))
    return found


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_torch_load_is_weights_only():
    loads = _calls(lambda name: name == "torch.load")
    assert loads, "the scan found no torch.load at all: it would pass vacuously"
    unsafe = [f"{path}:{line}" for path, line, call in loads
              if not (isinstance(_keyword(call, "weights_only"), ast.Constant) and _keyword(call, "weights_only").value
                      is True)]
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"


def test_nothing_trusts_remote_code_on_the_users_behalf():
    calls = _calls(lambda name: True)
    trusting = [f"{path}:{line}" for path, line, call in calls
                if isinstance(_keyword(call, "trust_remote_code"), ast.Constant)
                and _keyword(call, "trust_remote_code").value is True]
    assert not trusting, f"trust_remote_code=True passed at {trusting}"
    pickles = _calls(lambda name: name in ("pickle.load", "pickle.loads", "exec", "eval", "runpy.run_path"))
    assert not pickles, [f"{p}:{line}" for p, line, _ in pickles]


@pytest.fixture(scope="module")
def booby_trapped(tmp_path_factory):
    """A real model folder whose config also names Python code of the folder (auto_map) that would leave a marker
    file if it ever ran."""
    from adlr_hf import MegatronGPTForCausalLM
    from adlr_hf.data.text import train_tokenizer

    root = tmp_path_factory.mktemp("trap")
    folder = root / "model"
    torch.manual_seed(0)
    MegatronGPTForCausalLM(get_config("megatron-gpt-tiny")).save_pretrained(folder)
    texts = [f"The fox number {i} jumps over the dog." for i in range(300)]
    train_tokenizer(texts, vocab_size=300, out_dir=folder)
    marker = root / "EXECUTED"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import PretrainedConfig as EvilConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (root / "wiki.test.tokens").write_text(" = Title = \n\n" + " ".join(texts) + "\n")
    (root / "corpus.txt").write_text("\n\n".join(texts) + "\n")
    return folder, marker


def test_model_folder_code_never_runs_and_publishes_hold_safetensors_only(booby_trapped, tmp_path, monkeypatch):
    folder, marker = booby_trapped
    monkeypatch.chdir(tmp_path)
    assert cli(["evaluate", str(folder), "--task", "wikitext2", "--data", str(folder.parent / "wiki.test.tokens"),
                "--seq-len", "32"]) == 0
    assert cli(["publish", str(folder), str(tmp_path / "pub")]) == 0
    assert cli(["train", "--model", str(folder), "--data", str(folder.parent / "corpus.txt"), "--steps", "1",
                "--seq-len", "32", "--micro-batch-size", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert not marker.exists(), "adlr_hf executed Python code from a model folder"
    for published in (tmp_path / "pub", tmp_path / "run" / "model"):
        weights = [p.name for p in published.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth",
                                                                       ".pkl", ".ckpt")]
        assert weights and all(name.endswith(".safetensors") for name in weights), (published, weights)
