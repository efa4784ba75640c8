"""transformers' own TP (`from_pretrained(..., distributed_config=DistributedConfig(...))`) on Megatron-GPT.

One 2-rank gloo run (spawned like torchrun: RANK / WORLD_SIZE / MASTER_* in the environment; transformers initialises
the process group and a CPU device mesh itself) loads one saved tiny model several ways and records, per rank, eval
logits, greedy tokens, training loss and gradients. The tests below then check each claim of docs/tensor_parallel.md:

- no TP, adlr_hf's TP (`tp_size=2`), transformers with `hf_native_plan()` (stock styles only) and transformers with
  `tp_plan="auto"` after `register_hf_styles()` all give the same logits and tokens (and loss / gradients);
- our plan without registration, and an empty plan dict, are refused with the errors quoted;
- after an unsharded QKV the attention output projection must be "rowwise_split_input" (or whole), not "rowwise";
- transformers' `packed_colwise` (split_factor=2), plain `colwise`, and even `PackedColwiseParallel(split_factor=3)`
  shard the fused QKV wrongly, silently (no error, wrong logits).

Biases and LayerNorm parameters are perturbed away from their zero / one init before saving: a zero QKV bias would
hide the bias-sharding bug of `PackedColwiseParallel(split_factor=3)`.
"""

from __future__ import annotations

import pytest
import torch
from dist_utils import run_ranks

ATOL = RTOL = 1e-5
NEW_TOKENS = 6
QKV = "transformer.layers.0.self_attention.query_key_value"


def _tiny_config():
    from adlr_hf import get_config

    return get_config("megatron-gpt-tiny", vocab_size=1000, hidden_dropout=0.0, attention_dropout=0.0,
                      embedding_dropout=0.0)


def _save_tiny(folder) -> None:
    from adlr_hf import MegatronGPTForCausalLM

    torch.manual_seed(0)
    model = MegatronGPTForCausalLM(_tiny_config())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                param.add_(0.1 * torch.randn(param.shape, generator=gen))
            elif param.dim() == 2 and "embeddings" not in name:  # varied greedy tokens, not one repeated id
                param.add_(0.1 * torch.randn(param.shape, generator=gen))
    model.save_pretrained(folder)


def _inputs():
    ids = torch.randint(1, 1000, (2, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded row
    return ids, mask


def _full(tensor):
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _record(model, train=True):
    ids, mask = _inputs()
    model.eval()
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
    tokens = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    out = {"logits": logits, "tokens": tokens,
           "placements": {n: str(getattr(p, "placements", "plain")) for n, p in model.named_parameters()}}
    if train:
        model.train()
        loss = model(ids, labels=ids).loss
        loss.backward()
        out["loss"] = loss.detach()
        out["grads"] = {n: _full(p.grad) for n, p in model.named_parameters()}  # collective: every rank, same order
    return out


def _error_of(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the message is the result
        return f"{type(exc).__name__}: {exc}"
    return None


def _worker(rank, folder, out_dir):
    import torch.distributed as dist
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.distributed import DistributedConfig
    from transformers.distributed.tensor_parallel import ALL_PARALLEL_STYLES, PackedColwiseParallel

    import adlr_hf  # noqa: F401 - registers the Auto classes
    from adlr_hf.parallel.hf_native import hf_native_plan, register_hf_styles
    from adlr_hf.parallel.sharding import split_for_rank

    # tp_size=1 is adlr_hf's own argument (TensorParallelMixin): it keeps our plan off the natively sharded models.
    def native(plan):
        return AutoModelForCausalLM.from_pretrained(folder, tp_size=1,
                                                    distributed_config=DistributedConfig(tp_plan=plan))

    res = {"plain": _record(AutoModelForCausalLM.from_pretrained(folder, tp_size=1))}

    # `import adlr_hf` registers our styles; take them out to see what stock transformers makes of the plan.
    ours = {name: ALL_PARALLEL_STYLES._global_mapping.pop(name) for name in ("qkv_colwise", "vocab_lm_head")}
    res["error_auto_unregistered"] = _error_of(lambda: native("auto"))
    res["registered_on_import"] = all(getattr(s, "_adlr_hf_style", False) for s in ours.values())
    res["error_empty_dict"] = _error_of(lambda: native({}))

    stock = hf_native_plan(AutoConfig.from_pretrained(folder))
    res["stock_plan"] = stock
    model = native(stock)
    res["stock_tied"] = model.lm_head.weight is model.transformer.word_embeddings.weight
    res["stock"] = _record(model)

    # The attention output projection after an unsharded QKV: "rowwise_split_input" splits its (full) input itself;
    # plain "rowwise" takes the full input for this rank's slice and fails.
    attention = "transformer.layers.*.self_attention."
    res["split_input_dense"] = _record(native({**stock, attention + "dense": "rowwise_split_input"}), train=False)
    model = native({**stock, attention + "dense": "rowwise"}).eval()
    with torch.no_grad():
        res["error_rowwise_after_whole_qkv"] = _error_of(lambda: model(*_inputs()))

    megatron_like = {**stock, attention + "dense": "rowwise"}
    ALL_PARALLEL_STYLES.register("_test_packed_sf3", PackedColwiseParallel(split_factor=3))
    full_weight = load_file(f"{folder}/model.safetensors")
    for name, qkv_style in [("packed_sf2", "packed_colwise"), ("colwise_qkv", "colwise"),
                            ("packed_sf3", "_test_packed_sf3")]:
        model = native({**megatron_like, attention + "query_key_value": qkv_style}).eval()
        with torch.no_grad():
            res[name] = {"logits": model(*_inputs()).logits}
        qkv = model.get_submodule(QKV)
        for param in ("weight", "bias"):
            local = getattr(qkv, param).to_local()
            megatron = split_for_rank(full_weight[f"{QKV}.{param}"], 0, rank, 2, stride=3)
            res[name][f"{param}_is_megatron_shard"] = local.shape == megatron.shape and torch.equal(local, megatron)

    res["register_first"] = register_hf_styles()
    res["register_again"] = register_hf_styles()
    model = native("auto")
    res["auto_tied"] = model.lm_head.weight is model.transformer.word_embeddings.weight
    res["auto"] = _record(model)
    res["auto_plan"] = dict(model.tp_plan)
    saved = f"{out_dir}/saved_native"
    model.save_pretrained(saved)
    dist.barrier()
    res["saved_keys"] = sorted(load_file(f"{saved}/model.safetensors"))
    res["original_keys"] = sorted(full_weight)
    res["saved_equal"] = all(torch.equal(load_file(f"{saved}/model.safetensors")[k], v) for k, v in full_weight.items())
    res["reloaded"] = _record(AutoModelForCausalLM.from_pretrained(saved, tp_size=1), train=False)

    res["ours"] = _record(AutoModelForCausalLM.from_pretrained(folder, tp_size=2), train=False)
    torch.save(res, f"{out_dir}/rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_native_tp")
    _save_tiny(root / "model")
    run_ranks(_worker, str(root / "model"), str(root))
    return [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _assert_same(got, ref, what, grads=True):
    torch.testing.assert_close(got["logits"], ref["logits"], atol=ATOL, rtol=RTOL, msg=lambda m: f"{what} logits: {m}")
    assert torch.equal(got["tokens"], ref["tokens"]), f"{what}: greedy tokens differ"
    if grads:
        torch.testing.assert_close(got["loss"], ref["loss"], atol=ATOL, rtol=RTOL)
        for name, grad in ref["grads"].items():
            torch.testing.assert_close(got["grads"][name], grad, atol=ATOL, rtol=RTOL,
                                       msg=lambda m, n=name: f"{what} grad {n}: {m}")


def _max_logit_error(res, name):
    return (res[name]["logits"] - res["plain"]["logits"]).abs().max().item()


@pytest.mark.slow
def test_greedy_tokens_are_not_trivial(ranks):
    new = ranks[0]["plain"]["tokens"][:, -NEW_TOKENS:]
    assert len(set(new.flatten().tolist())) > 2, "the tiny model should not repeat one token"


@pytest.mark.slow
def test_our_tp_matches_no_tp(ranks):
    for res in ranks:
        _assert_same(res["ours"], res["plain"], "adlr_hf tp_size=2", grads=False)


@pytest.mark.slow
def test_hf_native_stock_plan_matches_no_tp(ranks):
    """Embedding, MLP and the tied head shard with transformers' stock styles; attention stays whole."""
    for res in ranks:
        _assert_same(res["stock"], res["plain"], "transformers TP, hf_native_plan")
        placements = res["stock"]["placements"]
        assert placements["transformer.layers.0.mlp.dense_h_to_4h.weight"] == "(Shard(dim=0),)"
        assert placements["transformer.layers.0.mlp.dense_4h_to_h.weight"] == "(Shard(dim=1),)"
        assert placements["transformer.word_embeddings.weight"] == "(Shard(dim=0),)"
        assert placements[f"{QKV}.weight"] == "plain"
        assert placements["transformer.layers.0.self_attention.dense.weight"] == "plain"
        assert res["stock_tied"], "the colwise_gather_output head stays tied to the vocab-sharded embedding"
    assert ranks[0]["stock_plan"] == {
        "transformer.word_embeddings": "embedding_rowwise",
        "transformer.layers.*.self_attention.query_key_value": "replicate",
        "transformer.layers.*.self_attention.dense": "replicate",
        "transformer.layers.*.mlp.dense_h_to_4h": "colwise",
        "transformer.layers.*.mlp.dense_4h_to_h": "rowwise",
        "lm_head": "colwise_gather_output",
    }


@pytest.mark.slow
def test_hf_native_auto_with_registered_styles_matches_no_tp(ranks):
    """After register_hf_styles(), tp_plan="auto" applies our whole plan, fused QKV included."""
    for res in ranks:
        assert res["register_first"] and res["register_again"]
        _assert_same(res["auto"], res["plain"], "transformers TP, auto + registered styles")
        placements = res["auto"]["placements"]
        assert placements[f"{QKV}.weight"] == placements[f"{QKV}.bias"] == "(_StridedShard(dim=0, sf=3),)"
        assert placements["transformer.layers.0.self_attention.dense.weight"] == "(Shard(dim=1),)"
        assert res["auto_plan"]["lm_head"] == "vocab_lm_head"
        assert res["auto_tied"]


@pytest.mark.slow
def test_attention_output_projection_after_whole_qkv(ranks):
    for res in ranks:
        _assert_same(res["split_input_dense"], res["plain"], "rowwise_split_input attention dense", grads=False)
        assert res["error_rowwise_after_whole_qkv"] == (
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (24x64 and 32x64)"
        ), res["error_rowwise_after_whole_qkv"]


@pytest.mark.slow
def test_hf_native_save_is_tp_agnostic(ranks):
    res = ranks[0]
    assert res["saved_equal"], "transformers' TP save gathers the full tensors"
    # transformers writes the tied head weight as well (a duplicate of the embedding); it loads back tied.
    assert set(res["saved_keys"]) - set(res["original_keys"]) <= {"lm_head.weight"}
    _assert_same(res["reloaded"], res["plain"], "reloaded after a transformers-TP save", grads=False)


@pytest.mark.slow
def test_our_styles_are_unknown_to_transformers_until_registered(ranks):
    for res in ranks:
        error = res["error_auto_unregistered"]
        assert error.startswith("ValueError: Unsupported `tp_plan` styles:"), error
        assert "qkv_colwise" in error and "vocab_lm_head" in error
        assert res["registered_on_import"], "import adlr_hf registers both styles"


@pytest.mark.slow
def test_empty_plan_dict_is_refused_at_tp2(ranks):
    """DistributedConfig(tp_plan={}) is documented as "applies no rule", but tp_size=2 then has nothing to shard."""
    for res in ranks:
        assert res["error_empty_dict"].startswith(
            "ValueError: `tp_size=2` was requested, but `MegatronGPTForCausalLM` has no `tp_plan`."
        ), res["error_empty_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["packed_sf2", "colwise_qkv", "packed_sf3"])
def test_transformers_qkv_styles_shard_fused_qkv_wrongly(ranks, name):
    """No error: each rank gets a 3H/2-row slice that `chunk(3)` accepts, but it is not [Q_r; K_r; V_r]."""
    for res in ranks:
        assert res[name]["logits"].shape == res["plain"]["logits"].shape
        assert _max_logit_error(res, name) > 1e-3, f"{name} unexpectedly matches"
        # Only split_factor=3 gets the weight right; every one of them shards the bias contiguously.
        assert res[name]["weight_is_megatron_shard"] == (name == "packed_sf3")
        assert not res[name]["bias_is_megatron_shard"]


def test_hf_native_plan_names_follow_the_model_class():
    from adlr_hf import MegatronGPTForSequenceClassification, MegatronGPTModel
    from adlr_hf.parallel.hf_native import hf_native_plan

    config = _tiny_config()
    causal = hf_native_plan(config)  # no `architectures` yet: the CausalLM layout
    assert causal["lm_head"] == "colwise_gather_output"
    assert causal["transformer.layers.*.mlp.dense_h_to_4h"] == "colwise"
    base = hf_native_plan(config, model_class=MegatronGPTModel)
    assert base == {k.removeprefix("transformer."): v for k, v in causal.items() if k != "lm_head"}
    with torch.device("meta"):
        classifier = MegatronGPTForSequenceClassification(config)
    assert hf_native_plan(classifier) == {k: v for k, v in causal.items() if k != "lm_head"}


def test_register_hf_styles_is_idempotent():
    from transformers.distributed.tensor_parallel import ALL_PARALLEL_STYLES, PackedColwiseParallel

    from adlr_hf.parallel.hf_native import register_hf_styles

    assert register_hf_styles() and register_hf_styles()
    qkv = ALL_PARALLEL_STYLES["qkv_colwise"]
    assert isinstance(qkv, PackedColwiseParallel) and qkv.split_factor == 3
    assert register_hf_styles() and ALL_PARALLEL_STYLES["qkv_colwise"] is qkv


def test_register_hf_styles_without_torch_distributed(monkeypatch):
    from adlr_hf.parallel import hf_native

    monkeypatch.setattr(hf_native, "_distributed_available", lambda: False)
    assert hf_native.register_hf_styles() is False
