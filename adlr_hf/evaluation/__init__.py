"""Zero-shot evaluation of causal LMs the way Megatron-LM (arXiv 1909.08053) evaluates them.

    from adlr_hf.evaluation import evaluate_wikitext, evaluate_lambada
    evaluate_wikitext(model, tokenizer, "wiki.test.tokens")   # {"perplexity", "adjusted_perplexity", "num_tokens", ...}
    evaluate_lambada(model, tokenizer, "lambada_test.jsonl")  # {"accuracy", "accuracy_last_token", "num_examples"}

The command line is `adlr-hf evaluate MODEL_DIR --task wikitext103|wikitext2|lambada --data PATH`. Image
classifiers: `evaluate_image_model_dir(model_dir, folder, split="test")` / `--task image-classification` (top-1/top-5).
Emotion classifiers: `evaluate_emotion_model_dir(model_dir, "goemotions"|"semeval-ec", path, split="test")` /
`--task goemotions|semeval-ec` (macro/micro-F1, per-class F1, Jaccard accuracy; `--tune-thresholds-on dev`).
Video predictors: `evaluate_next_frame_model_dir(model_dir, clips)` / `--task next-frame` (PSNR, SSIM, IE per clip and
overall, beside copying the last frame). Frame interpolators: `evaluate_frame_interpolation_model_dir(model_dir, data,
layout)` / `--task frame-interpolation` (PSNR, SSIM, IE per frame, per clip and overall, beside frame averaging).
"""

from .emotion_eval import EMOTION_TASKS, evaluate_emotion_model_dir, predict_probabilities
from .frame_interp_eval import FRAME_INTERP_TASK, evaluate_frame_interpolation, evaluate_frame_interpolation_model_dir
from .image_eval import IMAGE_TASK, evaluate_image_classification, evaluate_image_model_dir
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
from .next_frame_eval import NEXT_FRAME_TASK, evaluate_next_frame, evaluate_next_frame_model_dir

__all__ = [
    "EMOTION_TASKS", "evaluate_emotion_model_dir", "predict_probabilities",
    "FRAME_INTERP_TASK", "evaluate_frame_interpolation", "evaluate_frame_interpolation_model_dir",
    "DEFAULT_BATCH_SIZE", "DEFAULT_STRIDE", "IMAGE_TASK", "NEXT_FRAME_TASK", "evaluate_next_frame",
    "evaluate_next_frame_model_dir", "TASKS", "Window", "evaluate_image_classification",
    "evaluate_image_model_dir", "evaluate_lambada", "evaluate_model_dir",
    "evaluate_token_stream", "evaluate_wikitext", "lambada_predictions", "max_positions", "score_token_stream",
    "sliding_windows", "tokenize_stream",
]
