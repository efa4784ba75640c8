"""`causal-lm`: next-token language modelling on text (packed blocks of --seq-len tokens), with Megatron-LM's
zero-shot evaluations (WikiText perplexity, LAMBADA accuracy; arXiv 1909.08053) as `adlr-hf evaluate` tasks."""

from __future__ import annotations

import math
from pathlib import Path

from ..family import Option
from .base import Evaluation, ModelIndexEntry, Task, TaskRun, _fmt_int, pipeline_snippet
from .text_data import TEXT_OPTIONS, check_seq_len, check_text_args, limit_to_positions, load_text, resolve_tokenizer, split_off_eval

SNIPPET_PROMPT = "The quick brown fox"

_PPL = {"perplexity": ("perplexity", "Perplexity"), "ppl": ("perplexity", "Perplexity"),
        "adjusted_perplexity": ("adjusted_perplexity", "Adjusted perplexity (word-level, Megatron)"),
        "adjusted_ppl": ("adjusted_perplexity", "Adjusted perplexity (word-level, Megatron)")}
_STRIDE = Option("--stride", dict(type=int, default=None, help="wikitext*: tokens scored per window after the first "
                                                               "(Megatron's --overlapping-eval; default 32, or the "
                                                               "window length when that is shorter)"))
_LM_EVAL = "adlr_hf.evaluation.lm_eval:run_from_args"


def _wikitext(name: str, label: str, config: str) -> Evaluation:
    return Evaluation(name, _LM_EVAL, "wiki.test.tokens (or .raw)",
                      ModelIndexEntry("text-generation", "Language modeling", "Salesforce/wikitext", label, config,
                                      "test", _PPL), (_STRIDE,))


class CausalLMTask(Task):
    name = "causal-lm"
    description = "next-token language modelling on text"
    auto_class_name = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    unit = "tokens"
    reports_perplexity = True
    small_scale_below = 10**9
    small_scale_note = ", and its outputs are not useful text"
    arguments = TEXT_OPTIONS
    evaluations = (
        _wikitext("wikitext103", "WikiText-103", "wikitext-103-v1"),
        _wikitext("wikitext2", "WikiText-2", "wikitext-2-v1"),
        Evaluation("lambada", _LM_EVAL, "OpenAI's lambada_test.jsonl",
                   ModelIndexEntry("text-generation", "LAMBADA cloze (last word)", "EleutherAI/lambada_openai",
                                   "LAMBADA", "default", "test",
                                   {"accuracy": ("accuracy", "Accuracy"), "acc": ("accuracy", "Accuracy"),
                                    "accuracy_last_token": ("accuracy_last_token",
                                                            "Accuracy (last BPE token only)")})),
    )

    def check_args(self, args, config) -> None:
        check_text_args(args, config)

    def build(self, args, config, init_from, run_dir: Path, is_main: bool) -> TaskRun:
        from ..data.text import build_lm_dataset, lm_collate, train_tokenizer
        from ..parallel.state import rank0_first

        raw, paths, skipped = load_text(args, is_main)
        tokenizer, trained = resolve_tokenizer(args, raw, config.vocab_size, init_from, run_dir, is_main,
                                               lambda data, vocab, out: train_tokenizer(data, vocab_size=vocab,
                                                                                        out_dir=out))
        if trained or init_from is None:
            config.vocab_size = len(tokenizer)
        config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        check_seq_len(args.seq_len, config)
        limit_to_positions(tokenizer, config)
        packed = rank0_first(lambda: build_lm_dataset(raw, tokenizer, args.seq_len, num_proc=args.num_proc,
                                                      cache_dir=run_dir / "data_cache"), is_main)
        train, held_out = split_off_eval(packed, args.eval_fraction)
        return TaskRun(config, train, held_out, lm_collate, args.seq_len, tokenizer, paths, seq_len=args.seq_len,
                       extra_info=skipped)

    # -- the card -------------------------------------------------------------------------------------------------
    def card_rows(self, training: dict) -> list[tuple[str, object]]:
        rows = [("sequence length", training.get("seq_len")), ("tokens", _fmt_int(training.get("tokens")))]
        if training.get("eval_loss") is not None:
            loss = training["eval_loss"]
            rows.append(("held-out loss (perplexity)", f"{loss:.4g} ({math.exp(min(20.0, loss)):.4g})"))
        return rows

    def usage_snippet(self, model_id: str) -> str:
        return f"""```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model_id = {model_id!r}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id, trust_remote_code=True)
inputs = tokenizer({SNIPPET_PROMPT!r}, return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(tokenizer.decode(output[0], skip_special_tokens=True))
```

""" + pipeline_snippet("text-generation", model_id, "generator",
                       f'generator({SNIPPET_PROMPT!r}, max_new_tokens=20, do_sample=False)[0]["generated_text"]')

    # -- systems --------------------------------------------------------------------------------------------------
    def systems(self, model, processor, training, measure_inference: bool, runs: int) -> dict:
        from ..hub import systems

        flops = systems.flops_per_token(model.config, (training or {}).get("seq_len"))
        out = {"flops": flops, "inference": None}
        rate = (training or {}).get("tokens_per_second")
        if flops and rate is not None:
            out["model_flops_per_second"] = rate * flops["training_flops_per_token"]
        if measure_inference and processor is not None and model.can_generate():
            out["inference"] = systems.measure_inference_throughput(model, processor, runs=runs)
        return out

    def systems_rows(self, systems: dict) -> list[str]:
        from ..hub.format import fmt

        rows = []
        flops = systems.get("flops")
        if flops:
            rows += [f"| training FLOPs per token (s={flops['seq_len']}) | {fmt(flops['training_flops_per_token'])} "
                     "(Megatron: 72·l·h²·(1 + s/6h + V/12lh), forward + backward) |",
                     f"| inference FLOPs per token | {fmt(flops['inference_flops_per_token'])} (one forward: a "
                     "third) |"]
        if systems.get("model_flops_per_second") is not None:
            rows.append(f"| training model FLOP/s | {fmt(systems['model_flops_per_second'])} |")
        inf = systems.get("inference")
        if inf:
            rows.append(f"| inference throughput | {inf['tokens_per_second']:,.1f} tokens/s ({inf['decoding']}, batch "
                        f"{inf['batch_size']}, {inf['new_tokens']} new tokens after a {inf['prompt_tokens']}-token "
                        f"prompt, median of {inf['runs']}, {inf['dtype']}) on {inf['machine']} |")
        return rows
