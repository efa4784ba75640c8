"""Zero-shot evaluation of causal LMs the way Megatron-LM (arXiv 1909.08053) evaluates them.

    from adlr_hf.evaluation import evaluate_wikitext, evaluate_lambada
    evaluate_wikitext(model, tokenizer, "wiki.test.tokens")   # {"perplexity", "adjusted_perplexity", "num_tokens", ...}
    evaluate_lambada(model, tokenizer, "lambada_test.jsonl")  # {"accuracy", "accuracy_last_token", "num_examples"}

The command line is `adlr-hf evaluate MODEL_DIR --task wikitext103|wikitext2|lambada --data PATH`.
"""

from .lm_eval import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_STRIDE,
    TASKS,
    Window,
    evaluate_lambada,
    evaluate_model_dir,
    evaluate_token_stream,
    evaluate_wikitext,
    lambada_predictions,
    max_positions,
    score_token_stream,
    sliding_windows,
    tokenize_stream,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_STRIDE", "TASKS", "Window", "evaluate_lambada", "evaluate_model_dir",
    "evaluate_token_stream", "evaluate_wikitext", "lambada_predictions", "max_positions", "score_token_stream",
    "sliding_windows", "tokenize_stream",
]
