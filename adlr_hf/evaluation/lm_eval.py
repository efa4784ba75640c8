"""Zero-shot causal-LM evaluation drivers: WikiText sliding-window perplexity and LAMBADA cloze accuracy.

Reference: NVIDIA/Megatron-LM tag v1.0, `tasks/zeroshot_gpt2/{datasets.py,evaluate.py}` (and `evaluate_gpt2.py` at
abe36e2). Paper: Shoeybi et al., arXiv 1909.08053, section 5 / Table 3.

Sliding window (`_LMDataset`): window i holds tokens [i*stride, i*stride + seq_len] (seq_len + 1 tokens, so seq_len
inputs and seq_len targets). Window 0 scores all its targets; every later window scores only its last `stride`
targets, so each token after the first window is predicted from at least seq_len - stride tokens of context, and
every token but the first is scored exactly once. The last window is padded and the padding masked.
Deviation: the reference makes ceil((T-1-stride)/stride) + 1 windows, and those beyond
ceil((T-1-seq_len)/stride) + 1 score nothing but padding; they are skipped here (the sums are identical).

LAMBADA: every example is its own right-padded, attention-masked sequence context + target; the logits at the target
positions are teacher-forced, and the argmax per position goes to the `lambada_accuracy` metric.

Parallelism: the model may be tensor-parallel (every TP rank runs the same batches; in eval mode the logits cover
the whole vocabulary) and data-parallel (windows/examples are dealt round-robin over the DP ranks and the partial
results reduced over the DP group). Every rank returns the same metrics; only global rank 0 shows progress.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.lambada import LambadaExample, read_lambada, tokenize_lambada
from ..data.wikitext import read_wikitext
from ..checks import check_int
from ..parallel.state import get_parallel_state

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_STRIDE", "TASKS", "Window", "evaluate_lambada", "evaluate_model_dir",
    "evaluate_token_stream", "evaluate_wikitext", "lambada_predictions", "max_positions", "score_token_stream",
    "sliding_windows", "tokenize_stream",
]

DEFAULT_STRIDE = 32  # Megatron-LM `--overlapping-eval` default (tasks/main.py)
DEFAULT_BATCH_SIZE = 8


# ---------------------------------------------------------------------------------------------------------- helpers
def max_positions(config) -> int | None:
    """The longest input the model accepts (`max_position_embeddings`, or GPT-2's `n_positions`), or None."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _resolve_seq_len(model, seq_len: int | None) -> int:
    limit = max_positions(getattr(model, "config", None))
    if seq_len is None:
        if limit is None:
            raise ValueError("the model's config has no max_position_embeddings; pass seq_len explicitly")
        return limit
    check_int("seq_len", seq_len, 1)
    if limit is not None and seq_len > limit:
        raise ValueError(f"seq_len={seq_len} exceeds the model's max_position_embeddings={limit}; "
                         f"pass seq_len <= {limit} (the default is {limit})")
    return seq_len


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


class _Runner:
    """Calls the model in eval mode without a cache, asking for only the last `keep` logits when it can."""

    def __init__(self, model):
        self.model = model
        params = inspect.signature(model.forward).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self.pass_use_cache = "use_cache" in params or takes_kwargs
        self.pass_keep = "logits_to_keep" in params  # only when named: a **kwargs model may ignore it

    def logits(self, input_ids, attention_mask=None, keep: int = 0) -> torch.Tensor:
        kwargs = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if self.pass_use_cache:
            kwargs["use_cache"] = False
        if keep and self.pass_keep:
            kwargs["logits_to_keep"] = keep
        out = self.model(input_ids=input_ids, **kwargs)
        logits = out if torch.is_tensor(out) else getattr(out, "logits", None)
        if logits is None:
            logits = out[0]
        return logits[:, -keep:] if keep else logits


def _dp_info() -> tuple[int, int, object, bool]:
    """(dp_rank, dp_size, dp_group, is_global_rank_0)."""
    state = get_parallel_state()
    if state is not None and state.world_size > 1:
        return state.dp_rank, state.dp_size, state.dp_group, state.rank == 0
    if dist.is_available() and dist.is_initialized():
        return 0, 1, None, dist.get_rank() == 0
    return 0, 1, None, True


class _EvalMode:
    """model.eval() + torch.no_grad(), restoring the training flag afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


# --------------------------------------------------------------------------------------------------- sliding window
@dataclass(frozen=True)
class Window:
    """Window over a token stream: tokens [start, end) are read; targets [first_scored, end) are scored.

    The input is tokens [start, end - 1]; the target at stream index k is predicted at input position k - start - 1.
    """

    start: int
    end: int
    first_scored: int


def sliding_windows(num_tokens: int, seq_len: int, stride: int = DEFAULT_STRIDE) -> list[Window]:
    """Megatron-LM's overlapping evaluation windows over a stream of `num_tokens` tokens (see the module docstring)."""
    check_int("num_tokens", num_tokens, 2)
    check_int("seq_len", seq_len, 1)
    check_int("stride", stride, 1)
    if stride > seq_len:
        raise ValueError(f"stride={stride} is larger than seq_len={seq_len}, which would skip tokens; "
                         f"pass stride <= {seq_len} (stride == seq_len gives non-overlapping windows)")
    targets = num_tokens - 1
    count = 1 + max(0, math.ceil((targets - seq_len) / stride))
    windows = []
    for i in range(count):
        start = i * stride
        end = min(start + seq_len + 1, num_tokens)
        first = start + 1 if i == 0 else start + seq_len - stride + 1
        windows.append(Window(start, end, first))
    return windows


def score_token_stream(model, input_ids, seq_len: int | None = None, stride: int = DEFAULT_STRIDE,
                       batch_size: int = DEFAULT_BATCH_SIZE, pad_id: int = 0,
                       progress: bool = True) -> tuple[float, int]:
    """(summed NLL in nats, number of scored targets) of a token stream under the sliding window, over all DP ranks.

    `input_ids`: a 1-D sequence of token ids (list or tensor). Every target after the first token is scored once,
    so the count is len(input_ids) - 1.
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(-1)
    seq_len = _resolve_seq_len(model, seq_len)
    check_int("batch_size", batch_size, 1)
    if ids.numel() < 2:
        raise ValueError(f"the token stream has {ids.numel()} token(s); perplexity needs at least 2")
    windows = sliding_windows(ids.numel(), seq_len, stride)
    dp_rank, dp_size, dp_group, is_rank_0 = _dp_info()
    device = _device(model)
    runner = _Runner(model)
    mine = list(enumerate(windows))[dp_rank::dp_size]
    total_nll = torch.zeros((), dtype=torch.float64)
    total_count = 0

    def score(batch: list[tuple[int, Window]]):
        nonlocal total_nll, total_count
        first = batch[0][0] == 0
        # Window 0 is scored in full (its own batch); later windows only at their last `stride` positions.
        length = batch[0][1].end - batch[0][1].start - 1 if first else seq_len
        keep = 0 if first else stride
        inputs = torch.full((len(batch), length), pad_id, dtype=torch.long)
        labels = torch.zeros((len(batch), keep or length), dtype=torch.long)  # padding targets are masked
        mask = torch.zeros(labels.shape, dtype=torch.bool)
        for row, (_, w) in enumerate(batch):
            inputs[row, : w.end - 1 - w.start] = ids[w.start : w.end - 1]
            scored = ids[w.first_scored : w.end]
            labels[row, : scored.numel()] = scored
            mask[row, : scored.numel()] = True
        logits = runner.logits(inputs.to(device), keep=keep)
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels.to(device), reduction="none")
        total_nll += torch.where(mask.to(device), nll, 0.0).sum(dtype=torch.float64).cpu()
        total_count += int(mask.sum())

    with _EvalMode(model):
        bar = tqdm(total=len(mine), desc="wikitext windows", unit="win", disable=not (progress and is_rank_0))
        position = 0
        if mine and mine[0][0] == 0:
            score(mine[:1])
            bar.update(1)
            position = 1
        while position < len(mine):
            batch = mine[position : position + batch_size]
            score(batch)
            bar.update(len(batch))
            position += len(batch)
        bar.close()

    if dp_size > 1:
        totals = torch.tensor([float(total_nll), float(total_count)], dtype=torch.float64, device=_reduce_device())
        dist.all_reduce(totals, group=dp_group)
        total_nll, total_count = totals[0].cpu(), int(round(float(totals[1])))
    if total_count != ids.numel() - 1:  # the windows are built to score every target once
        raise RuntimeError(f"scored {total_count} targets but the stream has {ids.numel() - 1}; this is a bug")
    return float(total_nll), total_count


def _reduce_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def evaluate_token_stream(model, input_ids, num_original_tokens: int, seq_len: int | None = None,
                          stride: int = DEFAULT_STRIDE, batch_size: int = DEFAULT_BATCH_SIZE, pad_id: int = 0,
                          progress: bool = True) -> dict:
    """The `wikitext_perplexity` metric of an already tokenized stream (T = len(input_ids), T_o given)."""
    from ..metrics.wikitext_perplexity.wikitext_perplexity import WikitextPerplexity

    nll, count = score_token_stream(model, input_ids, seq_len, stride, batch_size, pad_id, progress)
    metric = WikitextPerplexity(keep_in_memory=True)
    return metric.compute(predictions=[nll], references=[count], num_original_tokens=num_original_tokens)


def tokenize_stream(tokenizer, text: str) -> list[int]:
    """BPE ids of the whole detokenized text as one stream, without special tokens (the reference's `tokenize`)."""
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def evaluate_wikitext(model, tokenizer, path: str | os.PathLike, seq_len: int | None = None,
                      stride: int = DEFAULT_STRIDE, batch_size: int = DEFAULT_BATCH_SIZE,
                      progress: bool = True) -> dict:
    """Megatron-LM's WikiText zero-shot perplexity of `model` on the file at `path` (`wiki.*.tokens` or `.raw`).

    Returns {"perplexity", "adjusted_perplexity", "num_tokens", "num_original_tokens"}; the paper reports
    `adjusted_perplexity`. `seq_len` defaults to the model's max positions; `stride` is Megatron's
    `--overlapping-eval` (default 32).
    """
    seq_len = _resolve_seq_len(model, seq_len)
    sliding_windows(2, seq_len, stride)  # validates stride before the (slow) tokenization
    check_int("batch_size", batch_size, 1)
    doc = read_wikitext(path)
    ids = tokenize_stream(tokenizer, doc.text)
    if len(ids) < 2:
        raise ValueError(f"{path} tokenizes to {len(ids)} token(s); perplexity needs at least 2")
    return evaluate_token_stream(model, ids, doc.num_original_tokens, seq_len, stride, batch_size,
                                 _pad_id(tokenizer), progress)


# ---------------------------------------------------------------------------------------------------------- LAMBADA
def lambada_predictions(model, examples: list[LambadaExample], seq_len: int | None = None,
                        batch_size: int = DEFAULT_BATCH_SIZE, pad_id: int = 0,
                        progress: bool = True) -> tuple[list[list[int]], list[list[int]]]:
    """(argmax ids at the target positions, target ids) for every example, gathered over the DP ranks.

    Each example is context + target, right-padded to the longest in its batch, with an attention mask; a context
    longer than fits in `seq_len` inputs keeps its last tokens.
    """
    seq_len = _resolve_seq_len(model, seq_len)
    check_int("batch_size", batch_size, 1)
    if not examples:
        raise ValueError("no LAMBADA examples to evaluate")
    dp_rank, dp_size, dp_group, is_rank_0 = _dp_info()
    device = _device(model)
    runner = _Runner(model)
    mine = examples[dp_rank::dp_size]
    predictions, references = [], []
    with _EvalMode(model):
        bar = tqdm(total=len(mine), desc="lambada", unit="ex", disable=not (progress and is_rank_0))
        for position in range(0, len(mine), batch_size):
            batch = mine[position : position + batch_size]
            rows = []
            for example in batch:
                if len(example.target_ids) > seq_len:
                    raise ValueError(f"a LAMBADA target has {len(example.target_ids)} tokens, more than "
                                     f"seq_len={seq_len}; raise seq_len")
                # Deviation: the reference cannot take a context longer than seq_len; here it is left-truncated
                # (LAMBADA passages are ~100 tokens, so this only matters for tiny test models).
                tokens = (example.context_ids + example.target_ids)[-(seq_len + 1):]
                rows.append(tokens[:-1])
            length = max(len(r) for r in rows)
            inputs = torch.full((len(rows), length), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for i, row in enumerate(rows):
                inputs[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[i, : len(row)] = 1
            argmax = runner.logits(inputs.to(device), attention_mask=mask.to(device)).argmax(dim=-1).cpu()
            for i, (row, example) in enumerate(zip(rows, batch)):
                n = len(example.target_ids)
                predictions.append(argmax[i, len(row) - n : len(row)].tolist())
                references.append(list(example.target_ids))
            bar.update(len(batch))
        bar.close()
    if dp_size > 1:
        gathered = [None] * dp_size
        dist.all_gather_object(gathered, (predictions, references), group=dp_group)
        predictions = [p for preds, _ in gathered for p in preds]
        references = [r for _, refs in gathered for r in refs]
    return predictions, references


def evaluate_lambada(model, tokenizer, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE,
                     strict: bool = True, seq_len: int | None = None, progress: bool = True) -> dict:
    """Megatron-LM's LAMBADA zero-shot accuracy of `model` on OpenAI's detokenized jsonl at `path`.

    Returns {"accuracy", "accuracy_last_token", "num_examples"}. `strict=True` (the paper's README setting) targets
    the whole last word; `strict=False` is the reference's non-strict mode (only the last BPE token of the text).
    """
    from ..metrics.lambada_accuracy.lambada_accuracy import LambadaAccuracy

    seq_len = _resolve_seq_len(model, seq_len)
    check_int("batch_size", batch_size, 1)
    examples = tokenize_lambada(read_lambada(path), tokenizer, strict=strict)
    predictions, references = lambada_predictions(model, examples, seq_len, batch_size, _pad_id(tokenizer), progress)
    return LambadaAccuracy(keep_in_memory=True).compute(predictions=predictions, references=references)


# ------------------------------------------------------------------------------------------------- model folders
TASKS = ("wikitext103", "wikitext2", "lambada")


def _resolve_model_dir(model_dir) -> str:
    path = os.path.expanduser(os.fspath(model_dir))
    if not os.path.exists(path):
        raise FileNotFoundError(f"model folder {path} does not exist; pass a folder with config.json and "
                                "model.safetensors (a training run keeps it in RUN/model)")
    if not os.path.isfile(os.path.join(path, "config.json")):
        if os.path.isfile(os.path.join(path, "model", "config.json")):  # a training run's output folder
            return os.path.join(path, "model")
        raise FileNotFoundError(f"{path} has no config.json, so it is not a model folder; pass the folder that "
                                "`save_pretrained` wrote (a training run keeps it in RUN/model)")
    return path


def evaluate_model_dir(model_dir, task: str, data, seq_len: int | None = None, stride: int | None = None,
                       batch_size: int = DEFAULT_BATCH_SIZE, tp: int = 1, strict: bool = True,
                       device: str | None = None, progress: bool = True) -> dict:
    """Load a saved causal LM (+ tokenizer) and run `task` on `data`; what `adlr-hf evaluate` runs.

    Every input is checked before the model is loaded. Under a launcher (WORLD_SIZE > 1) the TP/DP groups are made
    with `init_parallel(tp)` and the model is sharded on load. `stride` defaults to min(32, seq_len). Returns
    {"task", "model", "data", "settings", "metrics"}.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .loading import join_parallel_groups, load_model, read_config

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    path = _resolve_model_dir(model_dir)
    data = os.path.expanduser(os.fspath(data))
    if not os.path.exists(data):
        raise FileNotFoundError(f"data file {data} does not exist; pass "
                                + ("OpenAI's lambada_test.jsonl" if task == "lambada" else "a WikiText file such as "
                                   "wiki.test.tokens"))
    if stride is not None:
        check_int("stride", stride, 1)
    check_int("batch_size", batch_size, 1)
    check_int("tp", tp, 1)
    config = read_config(path)
    limit = max_positions(config)
    if seq_len is None:
        if limit is None:
            raise ValueError(f"{path}/config.json has no max_position_embeddings; pass --seq-len")
        seq_len = limit
    check_int("seq_len", seq_len, 1)
    if limit is not None and seq_len > limit:
        raise ValueError(f"--seq-len {seq_len} exceeds the model's max_position_embeddings={limit}; "
                         f"pass --seq-len {limit} or less (the default is {limit})")
    if stride is None:
        stride = min(DEFAULT_STRIDE, seq_len)
    # Read (and so check) the data before the expensive model load.
    if task == "lambada":
        texts = read_lambada(data)
    else:
        sliding_windows(2, seq_len, stride)  # stride <= seq_len
        doc = read_wikitext(data)
    join_parallel_groups(tp)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load a tokenizer from {path} ({err}); save the tokenizer beside the model "
                         "(`tokenizer.save_pretrained(folder)`)") from None
    model = load_model(AutoModelForCausalLM, path, tp, device)
    if task == "lambada":
        examples = tokenize_lambada(texts, tokenizer, strict=strict)
        preds, refs = lambada_predictions(model, examples, seq_len, batch_size, _pad_id(tokenizer), progress)
        from ..metrics.lambada_accuracy.lambada_accuracy import LambadaAccuracy

        metrics = LambadaAccuracy(keep_in_memory=True).compute(predictions=preds, references=refs)
        settings = {"seq_len": seq_len, "batch_size": batch_size, "strict": strict, "tp": tp}
    else:
        ids = tokenize_stream(tokenizer, doc.text)
        if len(ids) < 2:
            raise ValueError(f"{data} tokenizes to {len(ids)} token(s); perplexity needs at least 2")
        metrics = evaluate_token_stream(model, ids, doc.num_original_tokens, seq_len, stride, batch_size,
                                        _pad_id(tokenizer), progress)
        settings = {"seq_len": seq_len, "stride": stride, "batch_size": batch_size, "tp": tp}
    return {"task": task, "model": path, "data": data, "settings": settings, "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task wikitext103|wikitext2|lambada`."""
    return evaluate_model_dir(args.model_dir, args.task, args.data, seq_len=args.seq_len, stride=args.stride,
                              batch_size=args.batch_size, tp=args.tp)
