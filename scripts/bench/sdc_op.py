"""The spatially-displaced convolution (SDC-Net, arXiv 1811.00684; the op of NVIDIA/semantic-segmentation branch
`sdcnet`, `spatialdisplconv_package`): forward + backward time and peak memory of `adlr_hf.layers.sdc.sdc` against
the naive formulation `sdc_naive` (k*k shifted bilinear `grid_sample`s, differentiated by autograd), in one run, on
the same inputs, with gradients for all four inputs (image, vertical and horizontal kernels, motion).

    time_ratio   = median fwd+bwd time (sdc) / median fwd+bwd time (sdc_naive)          goal <= 0.5   ("ratio")
    memory_ratio = peak memory of one fwd+bwd (sdc) / the same for sdc_naive            goal <= 0.25

Default case (the issue's): k = 11, batch 2, 3 channels, 256x256, float32. Inputs: image uniform in [0, 1]; kernels
positive and summing to 1 per pixel (so outputs stay in [0, 1] and the 1e-5 check is on a meaningful scale); motion a
smooth random field (a 9x9 grid of N(0, 6^2) pixel displacements, bilinearly upsampled) plus N(0, 0.5^2) per-pixel
jitter, so windows straddle pixels and some leave the image (the border clamp is exercised). Outputs must agree to
1e-5 (max abs). Gradients are compared too (relative L2 difference, and the largest element-wise difference
relative to the gradient's largest value): ~1e-5 for the image and kernels. The motion's differ more (default case:
~3e-4 relative L2, ~1e-2 at worst) because of a handful of pixels (0.04 %) whose sample coordinate lies within
float32 rounding of an integer, where bilinear interpolation's derivative jumps: `grid_sample`'s coordinate
normalisation (x -> [-1, 1] -> x) lands on the other side of the integer (at the worst pixel, float64 gives sdc's
float32 value); without those pixels the relative L2 difference is ~1e-5, and in float64 the two agree to ~1e-14
everywhere (tests/layers/test_sdc.py).

Time: on CPU the CPU time of this process (`time.process_time`) with one torch thread by default: the machine is
shared, and CPU time measures the work rather than the neighbours. On CUDA: wall time between synchronisations.
Each repetition runs both variants back to back in alternating order; medians over repetitions.

Memory: on CUDA `torch.cuda.max_memory_allocated` above the level before the pass. On CPU, the peak of the CPU
allocator's running total of live bytes as `torch.profiler` records it with `profile_memory=True` ("Total Allocated"
of its memory events; the count starts at zero when profiling starts), over one separate, untimed forward + backward:
every tensor the pass allocates (saved activations, temporaries, gradients of the inputs), not the inputs themselves.

Measured (2 shared CPU cores, one thread, torch 2.14.1, defaults): time_ratio ~0.27, memory_ratio ~0.17
(sdc ~0.2 s and ~72 MB per pass; sdc_naive ~0.7 s and ~414 MB).

Quick run: `--size 64 --reps 2`. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from adlr_hf.layers.sdc import sdc, sdc_naive

VARIANTS = {"sdc": sdc, "sdc_naive": sdc_naive}


def make_inputs(batch: int, channels: int, size: int, k: int, seed: int, device: torch.device, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, size, size, generator=g, dtype=torch.float64)
    kernel_v = torch.rand(batch, k, size, size, generator=g, dtype=torch.float64) + 0.1
    kernel_h = torch.rand(batch, k, size, size, generator=g, dtype=torch.float64) + 0.1
    kernel_v, kernel_h = kernel_v / kernel_v.sum(1, keepdim=True), kernel_h / kernel_h.sum(1, keepdim=True)
    coarse = torch.randn(batch, 2, 9, 9, generator=g, dtype=torch.float64) * 6.0
    flow = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    flow = flow + torch.randn(batch, 2, size, size, generator=g, dtype=torch.float64) * 0.5
    grad_out = torch.randn(batch, channels, size, size, generator=g, dtype=torch.float64)
    inputs = [t.to(device, dtype).requires_grad_() for t in (image, kernel_v, kernel_h, flow)]
    return inputs, grad_out.to(device, dtype)


def _pass(fn, inputs, grad_out) -> torch.Tensor:
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward(grad_out)
    return out


def _timed(fn, inputs, grad_out, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        _pass(fn, inputs, grad_out)
        torch.cuda.synchronize(device)
        return time.perf_counter() - start
    start = time.process_time()
    _pass(fn, inputs, grad_out)
    return time.process_time() - start


def peak_bytes(fn, inputs, grad_out, device) -> int:
    """Peak bytes allocated by one forward + backward, above what was allocated before it."""
    for t in inputs:
        t.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _pass(fn, inputs, grad_out)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _pass(fn, inputs, grad_out)
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events
              if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type") == 0]
    if not totals:
        raise RuntimeError("the profiler recorded no CPU memory events; is this torch built with the profiler?")
    return max(totals)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=11, help="taps per kernel (default 11)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="H = W (default 256)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per variant (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see the docstring)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("k", "batch", "channels", "size", "reps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.size < 2:
        parser.error("--size must be >= 2")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)

    inputs, grad_out = make_inputs(args.batch, args.channels, args.size, args.k, args.seed, device, torch.float32)
    outputs, grads = {}, {}
    for name, fn in VARIANTS.items():  # also the warm-up pass
        outputs[name] = _pass(fn, inputs, grad_out).detach()
        grads[name] = [t.grad.detach().clone() for t in inputs]
    max_abs_diff = float((outputs["sdc"] - outputs["sdc_naive"]).abs().max())
    pairs = list(zip(("image", "kernel_v", "kernel_h", "flow"), grads["sdc"], grads["sdc_naive"]))
    grad_rel_l2 = {name: float((a - b).norm() / b.norm().clamp_min(1e-30)) for name, a, b in pairs}
    grad_max_rel = {name: float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for name, a, b in pairs}
    if max_abs_diff > 1e-5:
        raise SystemExit(f"sdc and sdc_naive outputs differ by {max_abs_diff:.3g} > 1e-5")

    names = list(VARIANTS)
    times = {name: [] for name in names}
    for rep in range(args.reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            times[name].append(_timed(VARIANTS[name], inputs, grad_out, device))
        print(f"rep {rep + 1}/{args.reps}: " + "  ".join(f"{n} {times[n][-1]:.3f}s" for n in names), flush=True)
    median = {name: statistics.median(v) for name, v in times.items()}
    peak = {name: peak_bytes(VARIANTS[name], inputs, grad_out, device) for name in names}
    time_ratio = median["sdc"] / median["sdc_naive"]
    memory_ratio = peak["sdc"] / peak["sdc_naive"]
    result = {
        "bench": "sdc_op",
        "ratio": time_ratio,
        "meaning": "ratio = time_ratio: median fwd+bwd time of sdc / sdc_naive (goal <= 0.5); memory_ratio: peak "
                   "bytes allocated by one fwd+bwd, sdc / sdc_naive (goal <= 0.25)",
        "time_ratio": time_ratio,
        "memory_ratio": memory_ratio,
        "goal_met": time_ratio <= 0.5 and memory_ratio <= 0.25,
        "max_abs_diff_output": max_abs_diff,
        "grad_rel_l2_diff": grad_rel_l2,
        "grad_max_rel_diff": grad_max_rel,
        "median_seconds": {k: round(v, 5) for k, v in median.items()},
        "seconds": {k: [round(t, 5) for t in v] for k, v in times.items()},
        "peak_bytes": peak,
        "time_measure": "cuda wall" if device.type == "cuda" else "process cpu time",
        "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "torch.profiler CPU allocator peak",
        "k": args.k, "batch": args.batch, "channels": args.channels, "size": args.size, "reps": args.reps,
        "threads": torch.get_num_threads(), "device": str(device), "torch": torch.__version__,
    }
    print(f"sdc vs naive: time {median['sdc']:.3f}s / {median['sdc_naive']:.3f}s = {time_ratio:.3f}; peak "
          f"{peak['sdc'] / 2**20:.1f} / {peak['sdc_naive'] / 2**20:.1f} MiB = {memory_ratio:.3f}; outputs agree to "
          f"{max_abs_diff:.2g}", flush=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
