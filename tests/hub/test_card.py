"""Model cards: Megatron's FLOPs formula, the card published from a plain model folder, `record_evaluation`
(model-index, replacement, minimal card) and evaluations surviving a re-publish of the same weights only."""

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard

import adlr_hf  # noqa: F401 - registers the families
from hub.hub_utils import write_tiny_gpt_folder
from adlr_hf.hub import systems
from adlr_hf.hub import record_evaluation, weights_fingerprint
from adlr_hf.hub.model_index import EVALS_FILE
from adlr_hf.hub.publish import publish
from adlr_hf.models.megatron_gpt import MegatronGPTConfig, MegatronGPTForCausalLM

WIKITEXT = {"task": "wikitext103", "model": "m", "data": "wiki.test.tokens",
            "metrics": {"perplexity": 31.5, "adjusted_perplexity": 40.25, "num_tokens": 1000,
                        "num_original_tokens": 800}}
LAMBADA = {"task": "lambada", "model": "m", "data": "lambada_test.jsonl",
           "metrics": {"accuracy": 0.4518, "accuracy_last_token": 0.61, "num_examples": 5153}}


def test_megatron_flops_formula_on_hand_computed_cases():
    # l=1, h=6, s=6, V=12: 72·1·36·(1 + 6/36 + 12/72) = 2592 · 4/3 = 3456 per token.
    assert systems.training_flops_per_token(6, 1, 6, 12) == pytest.approx(3456)
    assert systems.inference_flops_per_token(6, 1, 6, 12) == pytest.approx(1152)
    # 355M (l=24, h=1024, V=51200, s=1024): 72·24·1024²·(1 + 1/6 + 25/144) = 12,582,912 · 193 = 2,428,502,016.
    assert systems.training_flops_per_token(1024, 24, 1024, 51200) == pytest.approx(2_428_502_016, rel=1e-12)
    # Per iteration F = 72·B·s·l·h²(...) = (per token) · B · s.
    assert systems.megatron_flops_per_iteration(8, 1024, 24, 1024, 51200) == pytest.approx(2_428_502_016 * 8 * 1024)
    assert systems.flops_per_token(MegatronGPTConfig(num_layers=24, hidden_size=1024, num_attention_heads=16,
                                                     vocab_size=51200, max_position_embeddings=1024),
                                   None)["training_flops_per_token"] == pytest.approx(2_428_502_016)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A plain HF folder (no run): a tiny Megatron-GPT with a byte-level BPE tokenizer."""
    folder = tmp_path_factory.mktemp("model") / "tiny"
    write_tiny_gpt_folder(folder)
    return folder


@pytest.fixture(scope="module")
def published(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pub") / "card"
    publish(model_dir, out, repo_id="nvidia/tiny-card", license="mit", inference_runs=1)
    return out


def test_card_from_a_model_folder(published, model_dir):
    card = ModelCard.load(published / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation" and card.data.model_name == "tiny-card"
    assert {"adlr_hf", "megatron-gpt", "arxiv:1909.08053", "adlr_megatron_gpt"} <= set(card.data.tags)
    assert not card.data.eval_results
    assert "without a training record" in card.text and "nvidia/tiny-card" in card.text
    info = json.loads((published / "adlr_hf_systems.json").read_text())
    assert info["source"]["kind"] == "model" and info["training"] is None
    assert info["flops"]["seq_len"] == 64  # no run: the model's context length
    assert info["flops"]["training_flops_per_token"] == pytest.approx(systems.training_flops_per_token(64, 2, 32,
                                                                                                       280))
    assert info["parameters"] == sum(p.numel() for p in MegatronGPTForCausalLM.from_pretrained(model_dir).parameters())
    assert info["inference"]["tokens_per_second"] > 0 and info["inference"]["runs"] == 1


def test_record_evaluation_fills_the_model_index(published, tmp_path):
    folder = tmp_path / "pub"
    shutil.copytree(published, folder)
    record_evaluation(folder, WIKITEXT)
    record_evaluation(folder, LAMBADA)
    record_evaluation(folder, {**WIKITEXT, "metrics": {"perplexity": 30.0, "adjusted_perplexity": 38.0}})  # replaces

    card = ModelCard.load(folder / "README.md")
    got = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert got == {("WikiText-103", "perplexity"): 30.0, ("WikiText-103", "adjusted_perplexity"): 38.0,
                   ("LAMBADA", "accuracy"): 0.4518, ("LAMBADA", "accuracy_last_token"): 0.61}
    wiki = next(r for r in card.data.eval_results if r.metric_type == "perplexity")
    assert (wiki.dataset_type, wiki.dataset_config, wiki.dataset_split) == ("Salesforce/wikitext", "wikitext-103-v1",
                                                                           "test")
    assert card.data.model_name == "tiny-card" and card.data.license == "mit"  # the rest of the card is kept
    assert "| wikitext103 | WikiText-103 (test) | Perplexity | 30 |" in card.text
    assert "No evaluation recorded yet" not in card.text and "## How to use" in card.text
    records = json.loads((folder / EVALS_FILE).read_text())["evaluations"]
    assert [r["task"] for r in records] == ["lambada", "wikitext103"]
    assert {r["weights_sha256"] for r in records} == {weights_fingerprint(folder)}

    with pytest.raises(ValueError, match="metrics"):
        record_evaluation(folder, {"task": "lambada", "metrics": {}})
    with pytest.raises(FileNotFoundError):
        record_evaluation(tmp_path / "missing", WIKITEXT)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_record_evaluation_creates_a_minimal_card(model_dir, tmp_path):
    folder = tmp_path / "bare"
    shutil.copytree(model_dir, folder)
    record_evaluation(folder, LAMBADA)
    card = ModelCard.load(folder / "README.md")
    assert [r.metric_type for r in card.data.eval_results] == ["accuracy", "accuracy_last_token"]
    assert "adlr_hf" in card.data.tags and "Megatron-GPT" in card.text


def test_republish_keeps_evaluations_only_for_the_same_weights(model_dir, published, tmp_path):
    out = tmp_path / "pub"
    shutil.copytree(published, out)
    record_evaluation(out, WIKITEXT)

    publish(model_dir, out, repo_id="nvidia/tiny-card", license="mit", measure_inference=False)
    card = ModelCard.load(out / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"perplexity", "adjusted_perplexity"}
    assert "| wikitext103 | WikiText-103 (test) | Perplexity | 31.5 |" in card.text

    other = tmp_path / "other"
    model = MegatronGPTForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        model.transformer.final_layernorm.bias.add_(0.5)
    model.save_pretrained(other)
    shutil.copy(model_dir / "tokenizer.json", other)
    shutil.copy(model_dir / "tokenizer_config.json", other)
    publish(other, out, repo_id="nvidia/tiny-card", measure_inference=False)
    card = ModelCard.load(out / "README.md")
    assert not card.data.eval_results, "evaluations of other weights were kept"
    assert json.loads((out / EVALS_FILE).read_text())["evaluations"] == []


def test_base_model_and_datasets_come_from_hub_ids_only(published, tmp_path):
    from adlr_hf.hub.source import looks_like_hub_id as _looks_like_hub_id
    from adlr_hf.hub.source import start_model as _start_model

    # A run that started from a previous publish names that publish's repo id; a local folder alone is prose only.
    assert _start_model({"model": str(published)}) == ("nvidia/tiny-card", str(published))
    assert _start_model({"model": str(tmp_path)}) == (None, str(tmp_path))
    assert _start_model({"model": "megatron-gpt-tiny"}) == (None, None)
    assert _start_model({"model": "nvidia/megatron-gpt2-345m"}) == ("nvidia/megatron-gpt2-345m", None)
    assert _looks_like_hub_id("Salesforce/wikitext") and not _looks_like_hub_id(str(tmp_path / "a.txt"))


def _png(colour) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_evaluation_figures_are_written_shown_and_carried_by_a_republish(model_dir, published, tmp_path):
    folder = tmp_path / "pub"
    shutil.copytree(published, folder)
    figure = {"file": "sample.png", "caption": "a drawn sample", "png": _png("red")}
    record_evaluation(folder, {**LAMBADA, "figures": [figure]})
    assert (folder / "sample.png").read_bytes() == figure["png"]
    card = ModelCard.load(folder / "README.md")
    assert "![a drawn sample](sample.png)" in card.text and "*lambada: a drawn sample*" in card.text
    stored = json.loads((folder / EVALS_FILE).read_text())["evaluations"][0]
    assert stored["figures"] == [{"file": "sample.png", "caption": "a drawn sample"}]  # no bytes in the JSON

    # A re-publish of the same weights keeps the record and its picture; one whose file is gone drops the picture.
    publish(model_dir, folder, repo_id="nvidia/tiny-card", license="mit", inference_runs=1)
    assert (folder / "sample.png").read_bytes() == figure["png"]
    assert "![a drawn sample](sample.png)" in (folder / "README.md").read_text()
    (folder / "sample.png").unlink()
    publish(model_dir, folder, repo_id="nvidia/tiny-card", license="mit", inference_runs=1)
    assert "sample.png" not in (folder / "README.md").read_text()
    assert json.loads((folder / EVALS_FILE).read_text())["evaluations"][0]["figures"] == []


@pytest.mark.parametrize("bad", [{"file": "../up.png", "caption": "c", "png": _png("red")},
                                 {"file": "x.jpg", "caption": "c", "png": _png("red")},
                                 {"file": "x.png", "caption": "c", "png": b"not a png"},
                                 {"file": "x.png", "png": _png("red")}])
def test_a_bad_evaluation_figure_is_refused_before_anything_is_written(published, tmp_path, bad):
    folder = tmp_path / "pub"
    shutil.copytree(published, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="evaluation figure .* must be"):
        record_evaluation(folder, {**LAMBADA, "figures": [bad]})
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_append_card_section_adds_a_table_at_the_end_of_the_card(published, tmp_path):
    from adlr_hf.hub.card import append_card_section

    folder = tmp_path / "pub"
    shutil.copytree(published, folder)
    before = (folder / "README.md").read_text()
    append_card_section(folder, ["", "## Measured", "", "| a | b |", "|---|---|", "| 1 | 2 |"])
    append_card_section(folder, "\n## Notes\n\ntext\n\n\n")
    assert (folder / "README.md").read_text() == before.rstrip("\n") + "\n\n## Measured\n\n| a | b |\n|---|---|\n" \
                                                 "| 1 | 2 |\n\n## Notes\n\ntext\n"
    assert ModelCard.load(folder / "README.md").data.model_name == "tiny-card"  # the metadata header is intact
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
