"""Emotion classifiers (arXiv 1812.01207) on one process: pooling, losses, head, thresholds, saving,
pipeline and remote code."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

import adlr_hf  # noqa: F401 - registers the Auto classes
from adlr_hf import get_config
from adlr_hf.models.emotion import (
    EmotionConfig,
    EmotionTransformerForSequenceClassification,
    MLSTMForSequenceClassification,
    apply_thresholds,
    select_emotions,
    tune_thresholds,
)
from adlr_hf.models.emotion.task_emotion_classification import EmotionMetric
from adlr_hf.models.mlstm import MLSTMByteTokenizer, MLSTMForCausalLM
from adlr_hf.models.megatron_gpt import MegatronGPTForCausalLM
from remote_code import run_without_adlr_hf

LABELS = ["anger", "joy", "sadness"]
PAD = 1


def gpt_encoder(**overrides):
    base = dict(hidden_dropout=0.0, attention_dropout=0.0, embedding_dropout=0.0, vocab_size=300, pad_token_id=PAD,
                bos_token_id=0, eos_token_id=0)
    return get_config("megatron-gpt-tiny", **{**base, **overrides})


def transformer_clf(**head):
    head = {"classifier_hidden_layers": [32, 16], "classifier_dropout": 0.0, **head}
    torch.manual_seed(0)
    return EmotionTransformerForSequenceClassification(EmotionConfig.from_encoder(gpt_encoder(), LABELS, **head))


def mlstm_clf(**head):
    head = {"classifier_hidden_layers": [16], "classifier_dropout": 0.0, **head}
    torch.manual_seed(0)
    return MLSTMForSequenceClassification(EmotionConfig.from_encoder(get_config("mlstm-tiny", hidden_size=24), LABELS,
                                                                     **head))


def pad_rows(rows, pad, side):
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(0, len(r)) if side == "right" else slice(length - len(r), length)
        ids[i, span] = torch.tensor(r)
        mask[i, span] = 1
    return ids, mask


@pytest.mark.parametrize("kind", ["transformer", "mlstm"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_last_real_token_pooling_is_padding_invariant(kind, side):
    model = (transformer_clf() if kind == "transformer" else mlstm_clf()).eval()
    pad = PAD if kind == "transformer" else 256
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(2, 255, (n,), generator=g).tolist() for n in (9, 4, 6)]
    ids, mask = pad_rows(rows, pad, side)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        for i, row in enumerate(rows):
            alone = model(torch.tensor([row])).logits
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-5, atol=1e-5)


def test_loss_is_bce_plus_weighted_lm_loss_computed_independently():
    model = transformer_clf().train()
    ids = torch.randint(2, 300, (3, 10), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = model(ids, labels=labels)
    bce = F.binary_cross_entropy_with_logits(out.logits, labels)
    lm = MegatronGPTForCausalLM(model.config.encoder_config)
    missing, _ = lm.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith("transformer.")},
                                    strict=False)
    assert set(missing) <= {"lm_head.weight"}  # tied to the embedding
    lm_loss = lm(ids, labels=ids).loss
    torch.testing.assert_close(out.classification_loss, bce)
    torch.testing.assert_close(out.lm_loss, lm_loss)
    torch.testing.assert_close(out.loss, bce + 0.02 * lm_loss)

    model.config.aux_lm_loss_weight = 0.0
    plain = model(ids, labels=labels)
    assert plain.lm_loss is None
    torch.testing.assert_close(plain.loss, F.binary_cross_entropy_with_logits(plain.logits, labels))


def test_aux_lm_loss_ignores_padding_on_either_side():
    model = transformer_clf().eval()
    rows = [list(range(5, 14)), list(range(20, 24))]
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    per_row = [model(torch.tensor([r]), labels=labels[i:i + 1]).lm_loss for i, r in enumerate(rows)]
    # Mean over real next-token pairs: (8 × loss0 + 3 × loss1) / 11.
    expected = (8 * per_row[0] + 3 * per_row[1]) / 11
    for side in ("left", "right"):
        ids, mask = pad_rows(rows, PAD, side)
        torch.testing.assert_close(model(ids, attention_mask=mask, labels=labels).lm_loss, expected)


def test_mlstm_loss_adds_its_decoder_lm_loss():
    model = mlstm_clf().eval()
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = model(ids, labels=labels)
    lm = MLSTMForCausalLM(model.config.encoder_config)
    lm.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")})
    lm.eval()
    torch.testing.assert_close(out.lm_loss, lm(ids, labels=ids).loss)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, labels) + 0.02 * out.lm_loss)


def test_head_structure_prelu_and_dropout_placement():
    model = transformer_clf(classifier_hidden_layers=[40, 20, 10], classifier_dropout=0.3)
    layers = list(model.classifier.layers)
    kinds = [type(m) for m in layers]
    assert kinds == [nn.Dropout] + [nn.Linear, nn.PReLU, nn.Dropout] * 3 + [nn.Linear]
    assert all(m.p == 0.3 for m in layers if isinstance(m, nn.Dropout))
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 40), (40, 20), (20, 10), (10, 3)]
    assert all(m.weight.item() == pytest.approx(0.25) for m in layers if isinstance(m, nn.PReLU))
    single = transformer_clf(classifier_hidden_layers=[])
    assert [type(m) for m in single.classifier.layers] == [nn.Dropout, nn.Linear]


def test_grid_search_finds_the_f1_optimal_threshold():
    # Label 0: positives score 0.62, 0.71, 0.9; negatives 0.1, 0.3, 0.65. F1 by threshold range: [0.1, 0.3) 6/8,
    # [0.3, 0.62) 6/7 (the best), [0.62, 0.65) 4/6, [0.65, 0.71) 4/5. Label 1 has no positive example.
    probs = np.array([[0.62, 0.2], [0.71, 0.2], [0.9, 0.2], [0.1, 0.2], [0.3, 0.2], [0.65, 0.2]])
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]])
    thresholds = tune_thresholds(probs, labels)
    grid = np.linspace(0.005, 1, 200)
    f1 = [2 * ((probs[:, 0] > t) & (labels[:, 0] == 1)).sum() / ((probs[:, 0] > t).sum() + labels[:, 0].sum())
          for t in grid]
    assert thresholds[0] == pytest.approx(grid[int(np.argmax(f1))])
    assert thresholds[0] == grid[np.argmax(grid >= 0.3)]  # the smallest threshold of the best range
    # F1 is 0 at every threshold: the reference's rule keeps the last grid point, 1.0 (never predicted).
    assert thresholds[1] == 1.0


def test_predict_applies_per_class_thresholds():
    model = transformer_clf().eval()
    ids = torch.randint(2, 300, (4, 6), generator=torch.Generator().manual_seed(5))
    probs = torch.sigmoid(model(ids).logits)
    thresholds = [float(probs[:, 0].median().detach()), 0.0, 1.0]
    model.config.thresholds = thresholds
    pred = model.predict(ids)
    torch.testing.assert_close(pred.probabilities, probs.detach())
    expected = (probs > torch.tensor(thresholds)).long()
    assert torch.equal(pred.predictions, expected)
    assert pred.predictions[:, 1].all() and not pred.predictions[:, 2].any()
    assert pred.labels == [[LABELS[j] for j in range(3) if expected[i, j]] for i in range(4)]
    assert np.array_equal(apply_thresholds(probs.detach().numpy(), thresholds), expected.numpy())
    assert model.training is False


def test_thresholds_must_match_the_labels():
    with pytest.raises(ValueError, match="2 thresholds for 3 labels"):
        EmotionConfig.from_encoder(gpt_encoder(), LABELS, thresholds=[0.5, 0.5])


def _sample_texts():
    return ["i am so happy for you", "this makes me angry", "sad news today", "what a day"]


def _bpe_tokenizer():
    from adlr_hf.data.text import train_tokenizer

    return train_tokenizer(["i am so happy for you and this makes me angry", "sad news today what a day"] * 10,
                           vocab_size=300)


def test_save_auto_round_trip_and_pipeline_scores_every_label(tmp_path):
    model = transformer_clf().eval()
    model.config.thresholds = [0.4, 0.5, 0.6]
    tokenizer = _bpe_tokenizer()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["thresholds"] == [0.4, 0.5, 0.6] and config["problem_type"] == "multi_label_classification"
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is EmotionTransformerForSequenceClassification
    assert loaded.lm_head.weight is loaded.transformer.word_embeddings.weight
    enc = tokenizer(_sample_texts(), return_tensors="pt", padding=True)
    torch.testing.assert_close(loaded(**enc).logits, model(**enc).logits)

    clf = pipeline("text-classification", model=str(tmp_path), top_k=None)
    results = clf(_sample_texts())
    probs = torch.sigmoid(model(**enc).logits).detach()
    for i, result in enumerate(results):
        assert sorted(r["label"] for r in result) == sorted(LABELS)
        for r in result:
            assert r["score"] == pytest.approx(probs[i, LABELS.index(r["label"])].item(), abs=1e-5)
        assert select_emotions(result, loaded.config) == [
            r["label"] for r in result if r["score"] > loaded.config.thresholds[LABELS.index(r["label"])]]


def test_mlstm_classifier_and_byte_tokenizer_round_trip(tmp_path):
    model = mlstm_clf().eval()
    MLSTMByteTokenizer().save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is MLSTMForSequenceClassification and type(tokenizer) is MLSTMByteTokenizer
    enc = tokenizer(["héllo!", "ok"], return_tensors="pt", padding=True)
    assert enc["input_ids"][1, 2:].eq(256).all()
    torch.testing.assert_close(loaded(**enc).logits, model(**enc).logits)
    results = pipeline("text-classification", model=str(tmp_path), top_k=None)(["héllo!"])[0]
    assert sorted(r["label"] for r in results) == sorted(LABELS)


def test_from_pretrained_lm_loads_the_encoder_and_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    lm = MegatronGPTForCausalLM(gpt_encoder())
    lm.save_pretrained(tmp_path / "lm")
    clf = EmotionTransformerForSequenceClassification.from_pretrained_lm(
        tmp_path / "lm", labels=LABELS, classifier_hidden_layers=[8], aux_lm_loss_weight=0.1)
    assert clf.config.label_names == LABELS and clf.config.aux_lm_loss_weight == 0.1
    for name, tensor in lm.transformer.state_dict().items():
        assert torch.equal(clf.transformer.state_dict()[name], tensor), name
    assert torch.equal(clf.lm_head.weight, lm.lm_head.weight)
    with pytest.raises(ValueError, match="needs a adlr_mlstm language model"):
        MLSTMForSequenceClassification.from_pretrained_lm(tmp_path / "lm", labels=LABELS)
    torch.manual_seed(0)
    mlstm_lm = MLSTMForCausalLM(get_config("mlstm-tiny"))
    mlstm_lm.save_pretrained(tmp_path / "mlstm")
    mclf = MLSTMForSequenceClassification.from_pretrained_lm(tmp_path / "mlstm", labels=LABELS)
    assert torch.equal(mclf.lm_head.weight, mlstm_lm.lm_head.weight)
    assert torch.equal(mclf.mlstm.layers[0].mult_hidden.weight, mlstm_lm.mlstm.layers[0].mult_hidden.weight)
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "mlstm"), MLSTMForCausalLM)


def test_eval_metric_is_exact_over_batches_and_restarts_each_pass():
    from adlr_hf.metrics.multilabel_emotion import multilabel_scores

    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(50, 3)))
    labels = torch.tensor((rng.random((50, 3)) < 0.3).astype(np.float32))
    ids = torch.arange(50 * 4).view(50, 4)
    acc = EmotionMetric([0.5, 0.4, 0.6])
    for _ in range(2):  # two identical passes: the second one must not accumulate onto the first
        acc.reset()
        for start in range(0, 50, 8):
            batch = {"input_ids": ids[start:start + 8], "labels": labels[start:start + 8]}
            acc.add_batch(SimpleNamespace(logits=logits[start:start + 8]), batch)
        reported = acc.compute()
        probs = torch.sigmoid(logits).numpy()
        gold = labels.numpy().astype(int)
        at_config = multilabel_scores(apply_thresholds(probs, [0.5, 0.4, 0.6]), gold)
        assert reported["macro_f1"] == pytest.approx(at_config["macro_f1"])
        assert reported["micro_f1"] == pytest.approx(at_config["micro_f1"])
        tuned = tune_thresholds(probs, gold)
        assert acc.tuned_thresholds() == pytest.approx(tuned)
        assert reported["macro_f1_tuned"] == pytest.approx(
            multilabel_scores(apply_thresholds(probs, tuned), gold)["macro_f1"])


def test_remote_code_loads_both_classifiers_without_adlr_hf(tmp_path):
    transformer = transformer_clf().eval()
    transformer.save_pretrained(tmp_path / "transformer")
    _bpe_tokenizer().save_pretrained(tmp_path / "transformer")
    mlstm = mlstm_clf().eval()
    mlstm.save_pretrained(tmp_path / "mlstm")
    MLSTMByteTokenizer().save_pretrained(tmp_path / "mlstm")
    assert (tmp_path / "mlstm" / "tokenization_mlstm.py").is_file()
    ids = torch.randint(2, 255, (2, 6), generator=torch.Generator().manual_seed(7))
    torch.save({"ids": ids, "transformer": transformer(ids).logits, "mlstm": mlstm(ids).logits},
               tmp_path / "expected.pt")
    body = f"""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        for name in ("transformer", "mlstm"):
            folder = {str(tmp_path)!r} + "/" + name
            model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
            torch.testing.assert_close(model(expected["ids"]).logits, expected[name])
            print("remote-code-ok", name, type(model).__module__, model.predict(expected["ids"]).labels is not None)
        tok = AutoTokenizer.from_pretrained({str(tmp_path / 'mlstm')!r}, trust_remote_code=True)
        print("tokenizer-ok", type(tok).__module__, tok("ab")["input_ids"])
    """
    stdout = run_without_adlr_hf(body, tmp_path / "hf_home")
    assert "remote-code-ok transformer transformers_modules" in stdout
    assert "remote-code-ok mlstm transformers_modules" in stdout
    assert "tokenizer-ok transformers_modules" in stdout and "[97, 98]" in stdout
