"""Partial-convolution padding overhead: forward + backward time of PD-ResNet-50 against the same network with zero
padding (torchvision's ResNet-50, identical weights), in one run.

    ratio = median time(PD-ResNet-50, adlr_hf's PartialConv2d) / median time(ResNet-50, zero padding)   target <= 1.03

"Time" is the CPU time of the benchmarking process for one forward + backward pass, with one torch thread by
default: the machine is shared (2 cores, other jobs' load 2-4), where wall time measures the neighbours as much as
the network (a pass took 0.4 s or 4 s depending on them). With one thread the CPU time is the work done; the
wall-time ratios are reported too (`ratio_wall`, `ratio_reference_wall`).

The same run also times the "before": the identical network built with NVIDIA/partialconv's own `PartialConv2d`
(`models/partialconv2d.py`, reproduced below as `ReferencePartialConv2d`, wrapping every convolution as the
reference `pd_resnet.py` does) and reports `ratio_reference` the same way. Each repetition times the three variants
back to back, in a rotating order, on one fixed random batch (train mode: batch-norm batch statistics, mean of the
logits as the loss, `backward()`, gradients cleared between passes); medians over the repetitions.

What makes adlr_hf's version cheap (the differences from the reference, all in `adlr_hf/layers/partial_conv.py` and
`adlr_hf/models/pd_resnet/modeling_pd_resnet.py`):
1. only convolutions that pad are partial: the 1×1 convs of every bottleneck and of the downsample paths are plain
   `nn.Conv2d`s (the reference multiplies their outputs by a ratio that is exactly 1): 17 of ResNet-50's 53 convs
   renormalise instead of 53;
2. the ratio (and update mask) is cached per (H, W, dtype, device), computed once in fp32 for a 1×1×H×W mask, so no
   mask convolution runs at steady state, and a change of batch size does not recompute it (the reference keys its
   cache on the full input shape);
3. no mask multiply of the input when no mask is given, and the renormalisation is one pass over the output: a
   multiply without bias, a fused `addcmul` with one (the reference subtracts the bias, multiplies by the ratio, adds
   the bias back and multiplies by the update mask: four passes);
4. the update-mask multiply is skipped when the padding-only update mask is all ones (always, for padding).

Measured on 2 shared CPU cores (load average 3-7 from other jobs), torch 2.14.1, one thread:

    network, input          ratio CPU (wall)  NVIDIA ref. CPU (wall)  extra element-wise work per pass: ours / ref.
    ResNet-50, 8×3×224×224    0.998 (1.015)       1.004 (1.058)       34.9 M elements, 34 ops / 177.8 M, 106 ops
    VGG16-BN, 2×3×112×112     1.015 (0.996)       1.025 (1.031)       13.6 M elements, 39 ops /  40.7 M, 104 ops

(medians of 1.79 / 1.79 / 1.80 s per ResNet-50 pass; repetitions scatter by ±3 %, so the time ratios resolve about
±1.5 %: both implementations are within the 1.03 target on this CPU, where a convolution costs ~100× an element-wise
pass over its output). The counted work is the robust before/after: adlr_hf's version adds 5.1× (ResNet-50) / 3.0×
(VGG16-BN) fewer element-wise elements and ~3× fewer kernels than the reference, which matters where convolutions
are fast and element-wise passes are bandwidth- and launch-bound (GPUs; not measured here: no GPU was available).

Quick run: `--batch 2 --image-size 112 --reps 3`. Other networks: `--arch resnet18` / `--arch vgg16-bn` (VGG's
convs have biases: the fused multiply-add matters there). JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


class ReferencePartialConv2d(nn.Conv2d):
    """NVIDIA/partialconv `models/partialconv2d.py` (padding use, `mask_in=None`), as published: the 'before'."""

    def __init__(self, *args, **kwargs):
        self.multi_channel = kwargs.pop("multi_channel", False)
        self.return_mask = kwargs.pop("return_mask", False)
        super().__init__(*args, **kwargs)
        self.weight_maskUpdater = torch.ones(1, 1, self.kernel_size[0], self.kernel_size[1])
        self.slide_winsize = self.weight_maskUpdater.shape[1] * self.weight_maskUpdater.shape[2] * \
            self.weight_maskUpdater.shape[3]
        self.last_size = (None, None, None, None)
        self.update_mask = None
        self.mask_ratio = None

    def forward(self, input, mask_in=None):
        assert len(input.shape) == 4
        if mask_in is not None or self.last_size != tuple(input.shape):
            self.last_size = tuple(input.shape)
            with torch.no_grad():
                if self.weight_maskUpdater.type() != input.type():
                    self.weight_maskUpdater = self.weight_maskUpdater.to(input)
                mask = torch.ones(1, 1, input.data.shape[2], input.data.shape[3]).to(input) if mask_in is None \
                    else mask_in
                self.update_mask = F.conv2d(mask, self.weight_maskUpdater, bias=None, stride=self.stride,
                                            padding=self.padding, dilation=self.dilation, groups=1)
                self.mask_ratio = self.slide_winsize / (self.update_mask + 1e-8)
                self.update_mask = torch.clamp(self.update_mask, 0, 1)
                self.mask_ratio = torch.mul(self.mask_ratio, self.update_mask)
        raw_out = super().forward(torch.mul(input, mask) if mask_in is not None else input)
        if self.bias is not None:
            bias_view = self.bias.view(1, self.out_channels, 1, 1)
            output = torch.mul(raw_out - bias_view, self.mask_ratio) + bias_view
            output = torch.mul(output, self.update_mask)
        else:
            output = torch.mul(raw_out, self.mask_ratio)
        return (output, self.update_mask) if self.return_mask else output


def _reference_copy(model: nn.Module) -> nn.Module:
    """The same network with every convolution (padded or not) a `ReferencePartialConv2d` holding the same
    parameters, as NVIDIA's `pd_resnet.py` / `pd_vgg.py` build it."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                ref = ReferencePartialConv2d(child.in_channels, child.out_channels, child.kernel_size,
                                             stride=child.stride, padding=child.padding, dilation=child.dilation,
                                             groups=child.groups, bias=child.bias is not None)
                ref.weight = child.weight
                ref.bias = child.bias
                setattr(parent, name, ref)
    return model


def _build(arch: str, padding_mode: str, state=None):
    from adlr_hf import PDResNetForImageClassification, get_config

    name = f"pd-{arch}" if padding_mode == "partial" else f"{arch}-zeros"
    model = PDResNetForImageClassification(get_config(name))
    if state is not None:
        model.load_state_dict(state)
    return model.train()


def _pointwise_elements(model: nn.Module, x: torch.Tensor) -> dict:
    """Elements written by element-wise aten ops (mul, add, sub, div, addcmul, clamp; in-place or not) in one
    forward + backward pass, counted with a TorchDispatchMode: the memory-bound work partial padding adds on top of
    the convolutions (batch norm and ReLU are other ops and are not counted; the residual adds are, in every
    variant alike)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    pointwise = {aten.mul, aten.mul_, aten.add, aten.add_, aten.sub, aten.sub_, aten.div, aten.div_, aten.addcmul,
                 aten.addcmul_, aten.clamp, aten.clamp_}

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.elements, self.calls = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket in pointwise and isinstance(out, torch.Tensor):
                self.elements += out.numel()
                self.calls += 1
            return out

    model.zero_grad(set_to_none=True)
    with Count() as counter:
        model(pixel_values=x).logits.float().mean().backward()
    model.zero_grad(set_to_none=True)
    return {"elements": counter.elements, "calls": counter.calls}


def _step(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one forward + backward pass."""
    model.zero_grad(set_to_none=True)
    cpu, wall = time.process_time(), time.perf_counter()
    model(pixel_values=x).logits.float().mean().backward()
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50", help="resnet18..152 or vgg11..19[-bn] (default resnet50)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per variant (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes per variant first (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: CPU time then measures the work, see the docstring)")
    parser.add_argument("--no-reference", action="store_true", help="skip the NVIDIA reference variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("batch", "image_size", "reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    arch_name = args.arch  # registry names pd-<arch> / <arch>-zeros (e.g. pd-vgg16-bn / vgg16-bn-zeros)
    torch.manual_seed(args.seed)
    zeros = _build(arch_name, "zeros")
    state = zeros.state_dict()
    variants = {"zeros": zeros, "partial": _build(arch_name, "partial", state)}
    if not args.no_reference:
        variants["reference"] = _reference_copy(_build(arch_name, "zeros", state))
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(1))

    # Same weights; the partial variants differ from zero padding near the borders only.
    with torch.no_grad():
        a = variants["partial"].eval()(pixel_values=x[:1]).logits
        b = variants.get("reference", variants["partial"]).eval()(pixel_values=x[:1]).logits
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for model in variants.values():
        model.train()

    names = list(variants)
    for _ in range(max(1, args.warmup)):  # the first pass fills the ratio caches: not steady state
        for name in names:
            _step(variants[name], x)
    counts = {name: _pointwise_elements(variants[name], x) for name in names}
    times = {name: [] for name in names}
    walls = {name: [] for name in names}
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            cpu, wall = _step(variants[name], x)
            times[name].append(cpu)
            walls[name].append(wall)
        print(f"rep {rep + 1}/{args.reps}: " + "  ".join(f"{n} {times[n][-1]:.3f}s cpu / {walls[n][-1]:.3f}s wall"
                                                        for n in names), flush=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    median_wall = {name: statistics.median(t) for name, t in walls.items()}
    partial_convs = sum(1 for m in variants["partial"].modules() if type(m).__name__ == "PartialConv2d")
    all_convs = sum(1 for m in variants["zeros"].modules() if isinstance(m, nn.Conv2d))
    result = {
        "bench": "partialconv_overhead",
        "ratio": median["partial"] / median["zeros"],
        "meaning": "median fwd+bwd CPU time of the partial-padding network / the zero-padding network (same "
                   "weights); target <= 1.03",
        "ratio_reference": median["reference"] / median["zeros"] if "reference" in median else None,
        "ratio_wall": median_wall["partial"] / median_wall["zeros"],
        "ratio_reference_wall": median_wall["reference"] / median_wall["zeros"] if "reference" in median else None,
        "median_cpu_seconds": {k: round(v, 5) for k, v in median.items()},
        "median_wall_seconds": {k: round(v, 5) for k, v in median_wall.items()},
        "cpu_seconds": {k: [round(t, 5) for t in v] for k, v in times.items()},
        "wall_seconds": {k: [round(t, 5) for t in v] for k, v in walls.items()},
        "pointwise_elements_per_pass": {k: v["elements"] for k, v in counts.items()},
        "pointwise_calls_per_pass": {k: v["calls"] for k, v in counts.items()},
        "extra_pointwise_elements_vs_zeros": {k: v["elements"] - counts["zeros"]["elements"]
                                              for k, v in counts.items() if k != "zeros"},
        "arch": args.arch, "batch": args.batch, "image_size": args.image_size, "reps": args.reps,
        "threads": torch.get_num_threads(), "partial_convs": partial_convs, "convs": all_convs,
        "torch": torch.__version__,
    }
    print(f"{args.arch} (CPU s): zeros {median['zeros']:.3f}, partial {median['partial']:.3f} (ratio "
          f"{result['ratio']:.3f}, "
          f"{partial_convs}/{all_convs} convs renormalise)"
          + (f", NVIDIA reference {median['reference']:.3f} (ratio {result['ratio_reference']:.3f}, all "
             f"{all_convs})" if "reference" in median else ""), flush=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
