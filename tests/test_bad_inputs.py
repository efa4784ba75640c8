"""Bad input, table-driven, per subcommand (`train`, `publish`, `evaluate`, `convert`, `list`): every case exits
non-zero with one message naming the bad value and the fix (no traceback) and leaves no new or changed file. Checks
that need no process group run before any rank, tokenizer or cache is created, so these all run in this process."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from adlr_hf import get_config
from adlr_hf.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg-subset"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the cases point at: a corpus, broken text files, model folders (good, truncated, wrong-typed), an image
    folder with a truncated JPEG, a malformed GoEmotions folder, a foreign folder, a run folder without checkpoints."""
    from adlr_hf import MegatronBertForMaskedLM, MegatronGPTForCausalLM

    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "corpus.txt").write_text("\n\n".join(f"The fox number {i} jumps." for i in range(200)) + "\n")
    (root / "empty.txt").write_text("")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (root / "table.csv").write_text("a,b\n1,2\n")
    (root / "empty_folder").mkdir()
    (root / "broken.json").write_text("{not json")
    torch.manual_seed(0)
    gpt = MegatronGPTForCausalLM(get_config("megatron-gpt-tiny"))
    gpt.save_pretrained(root / "gpt")
    MegatronBertForMaskedLM(get_config("megatron-bert-tiny")).save_pretrained(root / "bert")
    shutil.copytree(root / "gpt", root / "truncated")
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    shutil.copytree(root / "gpt", root / "wrong_type")
    config = json.loads((root / "wrong_type" / "config.json").read_text())
    config["num_attention_heads"] = "x"
    (root / "wrong_type" / "config.json").write_text(json.dumps(config))
    (root / "not_a_model").mkdir()
    (root / "not_a_model" / "notes.txt").write_text("hello")
    (root / "foreign").mkdir()
    (root / "foreign" / "precious.txt").write_text("keep me")
    (root / "run_without_checkpoints" / "checkpoints").mkdir(parents=True)
    (root / "run_without_checkpoints" / "metrics.jsonl").write_text("")
    # An image folder whose training split holds one truncated JPEG.
    images = root / "images"
    for split, count in (("train", 3), ("test", 2)):
        for class_dir in sorted((CIFAR / split).iterdir())[:2]:
            (images / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.glob("*.jpg"))[:count]:
                shutil.copy2(image, images / split / class_dir.name / image.name)
    victim = sorted((images / "train").rglob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    # GoEmotions files with a malformed row (a label id that is not a number).
    emotions = root / "goemotions"
    emotions.mkdir()
    (emotions / "emotions.txt").write_text("anger\njoy\nneutral\n")
    (emotions / "train.tsv").write_text("so happy\t1\tid1\nugh\tnot-a-label\tid2\n")
    (emotions / "dev.tsv").write_text("fine\t2\tid3\n")
    # A Megatron-LM-looking folder that holds no checkpoint, and a torch file that is not a state dict.
    (root / "megatron").mkdir()
    (root / "megatron" / "latest_checkpointed_iteration.txt").write_text("release")
    torch.save({"note": "not weights"}, root / "not_weights.pth")
    (root / "ds_bad.json").write_text("{bad")
    return root


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _check(case, argv, needles, world, tmp_path, capsys, monkeypatch, env=None):
    monkeypatch.chdir(tmp_path)  # the default --out (runs/latest) and any stray output would land here
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    argv = [str(a).format(w=world, t=tmp_path) for a in argv]
    before_world, before_tmp = _snapshot(world), _snapshot(tmp_path)
    try:
        code = cli(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code not in (0, None), f"{case}: exit code {code}"
    assert "Traceback" not in err, f"{case}: {err}"
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, f"{case}: expected one error line, got {err!r}"
    for needle in needles:
        assert needle.format(w=world, t=tmp_path) in errors[0], f"{case}: {needle!r} not in {errors[0]!r}"
    assert _snapshot(world) == before_world, f"{case}: files changed"
    assert _snapshot(tmp_path) == before_tmp, f"{case}: files created: {set(_snapshot(tmp_path)) - set(before_tmp)}"


def _table_test(command: str, table: dict):
    """One parametrised test of `adlr-hf COMMAND` over `table` (case -> (argv, substrings of the message))."""

    @pytest.mark.parametrize("case", sorted(table))
    def test(case, world, tmp_path, capsys, monkeypatch):
        argv, needles = table[case]
        _check(case, [command, *argv], needles, world, tmp_path, capsys, monkeypatch)

    return test


TEXT = ["--data", "{w}/corpus.txt", "--steps", "2", "--no-progress"]
TRAIN = {
    "tp not dividing the heads (launcher)": (["--nproc", "3", "--tp", "3", *TEXT], ["num_attention_heads=4", "tp_size=3"]),
    "tp not dividing the processes": (["--nproc", "3", "--tp", "2", *TEXT], ["tp_size=2", "world size 3"]),
    "tp without a launcher": (["--tp", "2", *TEXT], ["tp_size=2", "world size 1"]),
    "missing data": (["--data", "{w}/nope.txt"], ["{w}/nope.txt", "does not exist"]),
    "empty data folder": (["--data", "{w}/empty_folder"], ["empty_folder", "holds no text data files"]),
    "empty text file": (["--data", "{w}/empty.txt"], ["empty.txt", "the file is empty", "--on-bad-sample skip"]),
    "binary file as text": (["--data", "{w}/binary.txt"], ["binary.txt", "not UTF-8", "--on-bad-sample skip"]),
    "unsupported data file": (["--data", "{w}/table.csv"], ["table.csv", "unsupported suffix"]),
    "sequence longer than the positions": (["--seq-len", "1000", *TEXT], ["--seq-len 1000", "max_position_embeddings=128"]),
    "zero micro batch": (["--micro-batch-size", "0", *TEXT], ["--micro-batch-size must be >= 1, got 0"]),
    "negative accumulation": (["--grad-accum", "-1", *TEXT], ["--grad-accum must be >= 1, got -1"]),
    "zero steps": (["--data", "{w}/corpus.txt", "--steps", "0"], ["--steps must be >= 1, got 0"]),
    "negative learning rate": (["--lr", "-1", *TEXT], ["--lr must be > 0, got -1.0"]),
    "min lr above lr": (["--min-lr", "1", *TEXT], ["--min-lr must be in [0, --lr=0.0003], got 1.0"]),
    "negative warm-up": (["--warmup-steps", "-1", *TEXT], ["--warmup-steps must be >= 0, got -1"]),
    "eval fraction of one": (["--eval-fraction", "1", *TEXT], ["--eval-fraction must be in [0, 1), got 1.0"]),
    "negative total limit": (["--save-total-limit", "-2", *TEXT], ["--save-total-limit must be >= 0, got -2"]),
    "zero collective timeout": (["--collective-timeout", "0", *TEXT], ["--collective-timeout must be > 0"]),
    "unknown variant": (["--model", "megatron-gpt-355M", *TEXT], ["megatron-gpt-355M", "megatron-gpt-355m"]),
    "a folder that is not a model": (["--model", "{w}/not_a_model", *TEXT], ["not_a_model", "has no config.json"]),
    "truncated safetensors": (["--model", "{w}/truncated", *TEXT], ["model.safetensors", "truncated"]),
    "config value of the wrong type": (["--model", "{w}/wrong_type", *TEXT], ["wrong_type", "usable config"]),
    "config.json that is not JSON": (["--model", "{w}/broken.json", *TEXT], ["broken.json", "not valid JSON"]),
    "override without a value": (["--set", "hidden_dropout", *TEXT], ["--set 'hidden_dropout' is not KEY=VALUE"]),
    "missing DeepSpeed config": (["--deepspeed-config", "{w}/nope.json", *TEXT], ["nope.json", "does not exist"]),
    "DeepSpeed config that is not JSON": (["--deepspeed-config", "{w}/ds_bad.json", *TEXT], ["ds_bad.json", "not valid JSON"]),
    "ZeRO-3 with TP": (["--nproc", "2", "--tp", "2", "--deepspeed-config", str(REPO / "configs/deepspeed/zero3.json"), *TEXT],
                       ["ZeRO stage 3", "--tp 2"]),
    "missing tokenizer": (["--tokenizer", "{w}/no_tokenizer", *TEXT], ["no_tokenizer", "does not exist"]),
    "resume from nothing": (["--resume", "{w}/nope", *TEXT], ["{w}/nope", "does not exist"]),
    "resume from a folder without checkpoints": (["--resume", "{w}/run_without_checkpoints", *TEXT],
                                                 ["run_without_checkpoints", "no complete checkpoint"]),
    "unknown task": (["--task", "translation", *TEXT], ["unknown task 'translation'"]),
    "task that does not fit the model": (["--task", "masked-lm", *TEXT], ["masked-lm", "does not fit", "causal-lm"]),
    "activation checkpointing without support": (["--model", "pd-resnet-tiny", "--data", "{w}/images",
                                                  "--activation-checkpointing"], ["--activation-checkpointing",
                                                                                  "cannot recompute"]),
    "truncated image in the training split": (["--model", "pd-resnet-tiny", "--data", "{w}/images"],
                                              [".jpg cannot be read", "--on-bad-sample skip"]),
    "image data that is a file": (["--model", "pd-resnet-tiny", "--data", "{w}/corpus.txt"], ["is not a folder"]),
    "evaluation split that does not exist": (["--model", "pd-resnet-tiny", "--data", "{w}/images", "--eval-split",
                                              "validation"], ["--eval-split 'validation'", "['test', 'train']"]),
    "emotion task without data": (["--task", "emotion-classification"], ["needs --data"]),
    "malformed emotion rows": (["--task", "emotion-classification", "--data", "goemotions", "{w}/goemotions"],
                               ["train.tsv"]),
    "zero processes": (["--nproc", "0", *TEXT], ["--nproc=0"]),
    # One --dataset serves every task with several layouts; each task refuses the others' layouts by name.
    "segmentation with a relationship layout": (["--model", "deeplabv3plus-tiny", "--data", "{w}/empty_folder",
                                                 "--dataset", "vrd"],
                                                ["--dataset 'vrd'", "semantic segmentation", "cityscapes, camvid"]),
    "relationships with a segmentation layout": (["--model", "reldn-tiny", "--data", "{w}/empty_folder",
                                                  "--dataset", "camvid"],
                                                 ["--dataset 'camvid'", "relationship detection", "vrd, vg, oi"]),
}


test_train = pytest.mark.skipif(not (CIFAR / "train").is_dir(), reason=f"the CIFAR-10 subset is not at {CIFAR}")(
    _table_test("train", TRAIN))


PUBLISH = {
    "missing source": (["{w}/nope", "{t}/out"], ["nope", "does not exist"]),
    "source is a file": (["{w}/corpus.txt", "{t}/out"], ["corpus.txt", "is a file"]),
    "source is not a run, model or checkpoint": (["{w}/not_a_model", "{t}/out"], ["not_a_model", "is not a run"]),
    "over a folder adlr_hf did not write": (["{w}/gpt", "{w}/foreign"], ["foreign", "--force"]),
    "output inside the source": (["{w}/gpt", "{w}/gpt/pub"], ["gpt", "choose a folder outside"]),
    "repo id without a namespace": (["{w}/gpt", "{t}/out", "--repo-id", "gpt"], ["--repo-id 'gpt'", "ORG/NAME"]),
    "shard size that is not a size": (["{w}/gpt", "{t}/out", "--max-shard-size", "huge"], ["--max-shard-size 'huge'"]),
    "license that is not an id": (["{w}/gpt", "{t}/out", "--license", "Apache 2"], ["--license 'Apache 2'"]),
    "run folder without a model or checkpoint": (["{w}/run_without_checkpoints", "{t}/out"],
                                                 ["run_without_checkpoints", "neither an exported model"]),
}


test_publish = _table_test("publish", PUBLISH)


EVALUATE = {
    "missing model folder": (["{w}/nope", "--task", "wikitext2", "--data", "{w}/corpus.txt"], ["nope", "does not exist"]),
    "not a model folder": (["{w}/not_a_model", "--task", "wikitext2", "--data", "{w}/corpus.txt"], ["no config.json"]),
    "missing data": (["{w}/gpt", "--task", "wikitext2", "--data", "{w}/nope.tokens"], ["nope.tokens", "does not exist"]),
    "unknown task": (["{w}/gpt", "--task", "wikitext", "--data", "{w}/corpus.txt"], ["unknown task 'wikitext'"]),
    "task that does not fit the model": (["{w}/bert", "--task", "wikitext2", "--data", "{w}/corpus.txt"],
                                         ["--task wikitext2", "adlr_megatron_bert"]),
    "window longer than the positions": (["{w}/gpt", "--task", "wikitext2", "--data", "{w}/corpus.txt", "--seq-len",
                                          "1000"], ["--seq-len 1000", "max_position_embeddings=128"]),
    "json into a missing folder": (["{w}/gpt", "--task", "wikitext2", "--data", "{w}/corpus.txt", "--json",
                                    "{t}/no/such/eval.json"], ["no/such", "does not exist"]),
    "config value of the wrong type": (["{w}/wrong_type", "--task", "wikitext2", "--data", "{w}/corpus.txt"],
                                       ["wrong_type", "config.json"]),
}


test_evaluate = _table_test("evaluate", EVALUATE)


CONVERT = {
    "unknown kind": (["gpt3", "{w}/gpt", "{t}/out"], ["invalid choice: 'gpt3'"]),
    "missing source": (["gpt2-hf", "{w}/nope", "{t}/out"], ["nope"]),
    "non-empty output without --overwrite": (["gpt2-hf", "{w}/gpt", "{w}/foreign"], ["foreign", "--overwrite"]),
    "converter on the wrong kind of folder": (["gpt2-hf", "{w}/bert", "{t}/out"], ["bert"]),
    "option of another kind": (["megatron-gpt", "{w}/megatron", "{t}/out", "--arch", "resnet50"],
                               ["--arch does not apply to kind 'megatron-gpt'"]),
    "torch file that is not a state dict": (["torchvision", "{w}/not_weights.pth", "{t}/out"], ["not_weights.pth"]),
    "Megatron folder without a checkpoint": (["megatron-gpt", "{w}/megatron", "{t}/out"], ["megatron"]),
}


test_convert = _table_test("convert", CONVERT)


def test_list_with_a_plugin_that_cannot_be_imported(world, tmp_path, capsys, monkeypatch):
    from adlr_hf import registry

    monkeypatch.setattr(registry, "_PLUGIN_ERRORS", [])
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_plugin_module")
    with pytest.warns(UserWarning, match="no_such_plugin_module"):
        registry.load_plugins()
    _check("unimportable plugin", ["list"], ["ADLR_HF_PLUGINS", "no_such_plugin_module"], world, tmp_path, capsys,
           monkeypatch)


def test_list_with_an_unknown_option(world, tmp_path, capsys, monkeypatch):
    _check("unknown option", ["list", "--all"], ["unrecognized arguments: --all"], world, tmp_path, capsys,
           monkeypatch)


def test_the_tables_hold_at_least_forty_cases():
    assert len(TRAIN) + len(PUBLISH) + len(EVALUATE) + len(CONVERT) + 2 >= 40
