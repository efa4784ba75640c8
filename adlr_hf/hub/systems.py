"""Systems numbers for a model card, measured by the zoo, never typed in.

* parameter count of the loaded model (tied weights counted once);
* FLOPs per token from Megatron's formula (Narayanan et al. 2021 eq. 3; Megatron-LM `megatron/training.py`
  `num_floating_point_operations`): one training iteration of a GPT with l layers, hidden h, vocabulary V on B
  sequences of s tokens costs  F = 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h))  (the 3× forward+backward form, the
  one to use for MFU). Per token that is F / (B·s); a forward pass alone is one third of it;
* training tokens/s and peak memory as the run recorded them (`run_info.json`, with its machine name);
* inference tokens/s of greedy generation with the KV cache, measured at publish time on this machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch

SYSTEMS_FILE = "adlr_hf_systems.json"
INFERENCE_PROMPT = "The quick brown fox jumps over the lazy dog. Once upon a time"


# -- FLOPs ---------------------------------------------------------------------------------------------------------
def megatron_flops_per_iteration(batch_size: int, seq_len: int, num_layers: int, hidden_size: int,
                                 vocab_size: int) -> float:
    """Model FLOPs of one training iteration (forward + backward = 3 × forward), Megatron's 72-form."""
    B, s, l, h, V = batch_size, seq_len, num_layers, hidden_size, vocab_size
    return 72.0 * B * s * l * h**2 * (1.0 + s / (6.0 * h) + V / (12.0 * l * h))


def training_flops_per_token(seq_len: int, num_layers: int, hidden_size: int, vocab_size: int) -> float:
    """F / (B·s) = 72·l·h²·(1 + s/(6h) + V/(12·l·h))."""
    return megatron_flops_per_iteration(1, seq_len, num_layers, hidden_size, vocab_size) / seq_len


def inference_flops_per_token(seq_len: int, num_layers: int, hidden_size: int, vocab_size: int) -> float:
    """One forward pass: a third of the training (forward + backward) FLOPs."""
    return training_flops_per_token(seq_len, num_layers, hidden_size, vocab_size) / 3.0


def transformer_dims(config) -> dict | None:
    """(layers, hidden, vocab) of a transformer config under any of the usual names, or None for other models."""
    def first(*names):
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    dims = {"num_layers": first("num_layers", "num_hidden_layers", "n_layer"),
            "hidden_size": first("hidden_size", "n_embd", "d_model"),
            "vocab_size": first("vocab_size")}
    return dims if all(dims.values()) else None


def flops_per_token(config, seq_len: int | None) -> dict | None:
    dims = transformer_dims(config)
    if dims is None:
        return None
    s = seq_len or getattr(config, "max_position_embeddings", None)
    if not s:
        return None
    return {
        "formula": "72*l*h^2*(1 + s/(6h) + V/(12*l*h)) per token (Megatron, fwd+bwd = 3x fwd)",
        "seq_len": int(s), **dims,
        "training_flops_per_token": training_flops_per_token(s, **dims),
        "inference_flops_per_token": inference_flops_per_token(s, **dims),
    }


# -- machine ------------------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str | None = None) -> str:
    """What ran the measurement, e.g. 'NVIDIA H200, torch 2.14.1+cu128' or 'AMD EPYC ... CPU (2 threads), torch ...'."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{_cpu_model()} CPU ({torch.get_num_threads()} threads of {os.cpu_count()} cores)"
    return f"{what}, {platform.system()} {platform.machine()}, torch {torch.__version__}"


# -- inference throughput ----------------------------------------------------------------------------------------
@torch.no_grad()
def measure_inference_throughput(model, tokenizer, prompt: str = INFERENCE_PROMPT, new_tokens: int = 32,
                                 runs: int = 3, warmup: int = 1) -> dict:
    """Greedy `generate` with the KV cache, batch 1, a short fixed prompt: the median tokens/s over `runs`."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    prompt_len = int(inputs["input_ids"].shape[1])
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None:
        new_tokens = max(1, min(new_tokens, int(limit) - prompt_len))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                  pad_token_id=pad)
    timings, generated = [], new_tokens
    try:
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            out = model.generate(**inputs, **kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            generated = int(out.shape[1]) - prompt_len
            if i >= warmup:
                timings.append(elapsed)
    finally:
        model.train(was_training)
    median = statistics.median(timings)
    return {
        "tokens_per_second": generated / median, "new_tokens": generated, "prompt_tokens": prompt_len,
        "batch_size": 1, "runs": runs, "seconds": [round(t, 6) for t in timings], "decoding": "greedy, KV cache",
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "device": str(device),
        "machine": machine_description(device),
    }


# -- image classifiers (convolutional families) --------------------------------------------------------------------
def _image_input(model, image_size: int | None, batch_size: int) -> torch.Tensor:
    config = model.config
    size = int(image_size or getattr(config, "image_size", None) or 224)
    channels = int(getattr(config, "num_channels", 3) or 3)
    param = next(model.parameters())
    return torch.randn(batch_size, channels, size, size, generator=torch.Generator().manual_seed(0)).to(
        device=param.device, dtype=param.dtype)


def measure_image_flops(model, image_size: int | None = None) -> dict:
    """FLOPs per image counted by `torch.utils.flop_counter.FlopCounterMode` on a real pass of one image at the
    model's `image_size` (measured, not a formula): the forward pass, and forward + backward (a training step without
    the optimizer). The counter counts 2 FLOPs per multiply-add of convolutions and matrix products, not the cheap
    element-wise work (batch norm, ReLU, pooling, partial-convolution ratios). One warm-up forward runs first, so
    per-size caches (partial-convolution ratios) are counted as in steady state. Eval mode (batch norm on running
    statistics) for both passes; the parameters' gradients are cleared afterwards."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = _image_input(model, image_size, 1)
    try:
        with torch.no_grad():
            model(pixel_values=x)
            with FlopCounterMode(display=False) as counter:
                model(pixel_values=x)
        forward = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model(pixel_values=x).logits.float().sum().backward()
        train = counter.get_total_flops()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {"method": "torch.utils.flop_counter.FlopCounterMode, one image, 2 FLOPs per multiply-add",
            "input_shape": list(x.shape[1:]), "inference_flops_per_image": int(forward),
            "training_flops_per_image": int(train)}


@torch.no_grad()
def measure_image_inference_throughput(model, image_size: int | None = None, batch_size: int = 8, runs: int = 3,
                                       warmup: int = 1) -> dict:
    """Images/s of the eval-mode forward pass on a random batch at the model's `image_size`: median over `runs`."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    was_training = model.training
    model.eval()
    x = _image_input(model, image_size, batch_size)
    device = x.device
    timings = []
    try:
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(pixel_values=x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                timings.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return {"images_per_second": batch_size / statistics.median(timings), "batch_size": batch_size, "runs": runs,
            "input_shape": list(x.shape[1:]), "seconds": [round(t, 6) for t in timings],
            "dtype": str(x.dtype).replace("torch.", ""), "device": str(device), "machine": machine_description(device)}


def image_systems(model, training: dict | None = None, measure_inference: bool = True, runs: int = 3) -> dict:
    """The card's systems numbers of an image classifier: FLOPs per image (counted) and inference images/s measured
    now (training images/s is the run's own record, shown by the card for every task)."""
    out = {"flops": measure_image_flops(model), "inference": None}
    if measure_inference:  # short passes: more of them, so a stall of a shared machine does not set the median
        out["inference"] = measure_image_inference_throughput(model, runs=max(runs, 10), warmup=3)
    return out


def image_card_rows(image: dict) -> list[str]:
    """Rows of the card's Systems table for `image_systems(...)`."""
    flops = image["flops"]
    shape = "×".join(str(v) for v in flops["input_shape"])
    rows = [f"| inference FLOPs per image ({shape}) | {flops['inference_flops_per_image']:.4g} (counted with "
            "FlopCounterMode: convolutions and matrix products, 2 per multiply-add) |",
            f"| training FLOPs per image | {flops['training_flops_per_image']:.4g} (forward + backward, counted) |"]
    inf = image.get("inference")
    if inf:
        rows.append(f"| inference throughput | {inf['images_per_second']:,.1f} images/s (eval forward, batch "
                    f"{inf['batch_size']}, median of {inf['runs']}, {inf['dtype']}) on {inf['machine']} |")
    return rows
