"""Model FLOPs utilisation (MFU) of Megatron-GPT training on one GPU.

A 1.3B-class Megatron-GPT (`megatron-gpt-1.2b`: 40 layers, hidden 1536, 16 heads, vocabulary 50257, the paper's
Table 1 size that fits one GPU) trains on random token ids: forward with the LM loss, backward, `torch.optim.AdamW`
with `fused=True`, zero_grad. Weights and optimizer state are fp32 (the master copy), the forward and backward run in
bf16 under `torch.autocast`, and attention is SDPA restricted to its flash kernel (`sdpa_kernel(FLASH_ATTENTION)`;
the model calls it causal with no mask tensor, which the flash kernel accepts). Warm-up steps are excluded; each
timed step ends with `torch.cuda.synchronize()`; the median step time is used.

    ratio = MFU = F / (median step time × peak)

F is Megatron's model-FLOPs formula for one iteration (Narayanan et al., arXiv 2104.04473, eq. 3;
`adlr_hf.hub.systems.megatron_flops_per_iteration`), 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)), with B the micro-batch,
s the sequence length and V the model's own vocabulary. The peak is the device's dense bf16 tensor-core rate from the
table below (or `--peak-tflops`). The paper's anchor (Megatron-LM, arXiv 1909.08053, abstract): 39 TFLOP/s on one
V100 for the 1.2B model, 30 % of its 125 TFLOP/s fp16 peak.

Without a GPU it prints a "no GPU" line and a JSON line without a ratio, and exits 0. `--device cpu` runs the same
loop on the CPU for a smoke test of the script (with `--peak-tflops` giving a nominal peak), e.g.
`--device cpu --model megatron-gpt-tiny --seq-len 64 --micro-batch-size 2 --steps 2 --warmup 1 --peak-tflops 1`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

# Dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name() (vendor data sheets; SXM
# parts). The first match wins, so longer names come first.
PEAK_BF16_TFLOPS = (
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("GH200", 989.4), ("B200", 2250.0),
    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1), ("L40", 181.0), ("A10G", 70.0), ("A10", 125.0),
    ("L4", 121.0), ("RTX 4090", 165.2), ("RTX 3090", 71.0),
)
PAPER_ANCHOR = "Megatron-LM (arXiv 1909.08053): 39 TFLOP/s per V100 for the 1.2B model, 30 % of peak"


def device_peak_tflops(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def build_model(name: str, seq_len: int, device: torch.device):
    import adlr_hf  # noqa: F401 - registers the families
    from adlr_hf.registry import get_config, main_model_class, variant_family

    config = get_config(name, max_position_embeddings=max(seq_len, get_config(name).max_position_embeddings))
    torch.manual_seed(0)
    with device:
        model = main_model_class(variant_family(name))(config)
    return model.train(), config


def timed_steps(model, optimizer, ids, steps: int, warmup: int, device: torch.device) -> list[float]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    # Only the flash kernel on a GPU (an error if it cannot run); the CPU smoke test takes what the CPU offers (its
    # flash kernel has no dropout).
    only_flash = sdpa_kernel([SDPBackend.FLASH_ATTENTION]) if device.type == "cuda" else contextlib.nullcontext()
    with only_flash:
        for step in range(warmup + steps):
            sync()
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            if step >= warmup:
                times.append(time.perf_counter() - start)
    if not torch.isfinite(loss.detach()).item():
        raise RuntimeError(f"the loss is not finite ({loss.item()}); the measurement is void")
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="megatron-gpt-1.2b", help="a registered Megatron-GPT variant")
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--activation-checkpointing", action="store_true", help="for GPUs with less memory")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak (default: from the table in this script)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: a smoke test of the script, not a measurement")
    args = parser.parse_args(argv)
    for flag in ("micro_batch_size", "seq_len", "steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        parser.error("--peak-tflops must be positive")

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False on this machine, so MFU was not measured (run it on a "
              "machine with a CUDA GPU; `--device cpu` only smoke-tests the script)")
        result = {"bench": "gpu_mfu", "ratio": None, "skipped": "no GPU", "model": args.model,
                  "paper_anchor": PAPER_ANCHOR}
        print(json.dumps(result))
        return result

    from adlr_hf.hub.systems import machine_description, megatron_flops_per_iteration

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model, config = build_model(args.model, args.seq_len, device)
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01, fused=True)
    ids = torch.randint(0, config.vocab_size, (args.micro_batch_size, args.seq_len), device=device,
                        generator=torch.Generator(device=device).manual_seed(0))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = timed_steps(model, optimizer, ids, args.steps, args.warmup, device)
    step = statistics.median(times)
    flops = megatron_flops_per_iteration(args.micro_batch_size, args.seq_len, config.num_layers, config.hidden_size,
                                         config.vocab_size)
    achieved = flops / step / 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = args.peak_tflops if args.peak_tflops is not None else device_peak_tflops(name)
    mfu = None if peak is None else achieved / peak
    params = sum(p.numel() for p in model.parameters())
    attention = "SDPA flash kernel" if device.type == "cuda" else "SDPA (CPU smoke test)"
    print(f"{args.model}: {params:,} parameters, micro-batch {args.micro_batch_size} × {args.seq_len} tokens, bf16 "
          f"autocast, fused AdamW, {attention}{', activation checkpointing' if args.activation_checkpointing else ''}")
    print(f"device: {machine_description(device)}")
    print(f"median step {step:.4f} s over {len(times)} steps (all: {', '.join(f'{t:.4f}' for t in times)})")
    print(f"model FLOPs per step {flops:.4g} (Megatron's formula) -> {achieved:.4g} TFLOP/s")
    if mfu is None:
        print(f"no peak known for {name!r}: pass --peak-tflops to get the MFU")
    else:
        print(f"MFU = {achieved:.4g} / {peak:g} TFLOP/s = {mfu:.3f}   ({PAPER_ANCHOR})")
    result = {"bench": "gpu_mfu", "ratio": None if mfu is None else round(mfu, 4),
              "ratio_means": "model FLOPs utilisation: Megatron model FLOPs per second / the device's dense bf16 peak",
              "achieved_tflops": achieved, "model_flops_per_step": flops, "peak_tflops": peak, "device": name,
              "median_step_seconds": round(step, 6), "model": args.model, "parameters": params,
              "micro_batch_size": args.micro_batch_size, "seq_len": args.seq_len,
              "activation_checkpointing": args.activation_checkpointing,
              "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
              if device.type == "cuda" else None,
              "smoke_test_only": device.type != "cuda", "paper_anchor": PAPER_ANCHOR}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
