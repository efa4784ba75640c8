"""Partial-convolution padding vs zero padding on real data: PD-ResNet-18 and ResNet-18 trained side by side from the
same seed (identical initial weights, identical batches and augmentation draws) for the same number of steps on the
CIFAR-10 JPEG subset (../shared/data/cifar10-jpeg-subset: 2,000 training images, 200 per class), then top-1 on
its test split (5,000 images). Several seeds; a seed's two runs differ only in the padding.

    ratio = mean top-1(PD-ResNet-18) / mean top-1(ResNet-18 with zero padding)     (> 1: partial padding helps)

Network (CIFAR-sized, as is usual for 32×32 inputs): torchvision's ResNet-18 layout and names (BasicBlocks, depths
2-2-2-2, `adlr_hf` registry variants `pd-resnet18` / `resnet18-zeros`) at an eighth of the width (`base_width` 8:
8-16-32-64 channels, 176,402 parameters; the budget on 2 shared cores allows no more), with the CIFAR stem
(`stem="cifar"`: `conv1` a 3×3 stride-1 conv, partial in the PD network like every padded conv, and no max-pool)
instead of the 7×7/2 conv + 3×3/2 max-pool meant for 224×224.
Training: SGD (momentum 0.9, Nesterov, weight decay 5e-4 on conv/linear weights), batch 64, learning rate 0.05 with a
linear warm-up over the first 5 % of the steps and cosine decay to 0, cross entropy; augmentation: random crop
32×32 from the image padded by 4 pixels (zeros) and horizontal flip, drawn from a per-seed generator shared by both
networks; normalisation with the training images' own per-channel mean and std. Evaluation: the whole test split,
no augmentation, eval-mode batch norm.

The images are decoded once (`datasets` imagefolder via `adlr_hf.data.images.load_image_folder`) into uint8 tensors.
Training steps are interleaved (one step of each network in turn), so machine load hits both alike; the time per
step is reported for information only. The budget is steps, not seconds: both networks get exactly the same.

Measured with the defaults (200 steps × batch 64 = 6.4 epochs, seeds 0, 1, 2; 2 shared CPU cores, 8.5 minutes;
`--publish` wrote the seed-0 PD-ResNet-18 with its card, whose `adlr-hf evaluate` top-1 matched this script's):

    seed   PD-ResNet-18 top-1   ResNet-18 (zeros) top-1
    0            0.3918               0.3938
    1            0.3710               0.3926
    2            0.3850               0.4008
    mean         0.3826 ± 0.0106      0.3957 ± 0.0044      ratio 0.967, partial better in 0 of 3 seeds

An earlier run of the same recipe, whose CIFAR stem was patched in after construction (so a different draw of the
initial weights), gave 0.3837 ± 0.0072 vs 0.3907 ± 0.0131 (ratio 0.982, partial better in 1 of 3). Over the six
runs zero padding leads by about one point, inside two seed standard deviations; the partial-padding networks also
ended with a higher training loss (1.60-1.69 vs 1.58-1.59), i.e. in this short budget they learned more slowly. No
benefit of partial padding is visible at this scale; the paper's gains (+0.25 to +0.69 points top-1 on ImageNet,
5-run averages of 100-epoch runs at 224×224) are far smaller than this noise, so the run neither confirms nor
refutes them. Per step the partial network took 3-20 % longer here (wall time, interleaved): with 8-64 channels the
convolutions are so cheap that the element-wise renormalisation is a visible share, unlike ResNet-50 at 224×224.

Quick run: `--steps 60 --seeds 0`. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg-subset"


def load_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 images N×3×32×32, int64 labels, class names) of one split of an image folder."""
    from torchvision.transforms.v2.functional import pil_to_tensor

    from adlr_hf.data.images import label_names, load_image_folder

    dataset = load_image_folder(folder, split)
    images = torch.stack([pil_to_tensor(img.convert("RGB")) for img in dataset["image"]])
    return images, torch.tensor(dataset["label"], dtype=torch.long), label_names(dataset)


def build(padding_mode: str, names: list[str], base_width: int, state=None) -> nn.Module:
    """ResNet-18 layout at `base_width`, CIFAR stem (`stem="cifar"`: 3×3/1 conv1, no max-pool); `state` gives
    identical weights."""
    from adlr_hf import PDResNetForImageClassification, get_config

    name = "pd-resnet18" if padding_mode == "partial" else "resnet18-zeros"
    config = get_config(name, base_width=base_width, stem="cifar", num_labels=len(names),
                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
                        image_size=32, resize_size=32)
    model = PDResNetForImageClassification(config)
    if state is not None:
        model.load_state_dict(state)
    return model


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32×32 crop of the 4-pixel zero-padded image and a random horizontal flip (per image)."""
    n = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=generator)
    dy = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        crop = padded[i, :, dy[i]: dy[i] + 32, dx[i]: dx[i] + 32]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def top1(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalise, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(pixel_values=normalise(images[start: start + batch])).logits
        correct += (logits.argmax(-1) == labels[start: start + batch]).sum().item()
    model.train()
    return correct / len(images)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images scaled to [0, 1], shaped (1, 3, 1, 1)."""
    scaled = images.float() / 255
    return scaled.mean(dim=(0, 2, 3)).view(1, 3, 1, 1), scaled.std(dim=(0, 2, 3)).view(1, 3, 1, 1)


def run_seed(seed: int, args, train, test, names: list[str]) -> tuple[dict, dict]:
    train_x, train_y = train
    mean, std = channel_stats(train_x)

    def normalise(x):
        return (x.float() / 255 - mean) / std

    torch.manual_seed(seed)
    zeros = build("zeros", names, args.base_width)
    models = {"partial": build("partial", names, args.base_width, zeros.state_dict()), "zeros": zeros}
    optimizers = {}
    for name, model in models.items():
        decay = [p for p in model.parameters() if p.ndim > 1]
        other = [p for p in model.parameters() if p.ndim <= 1]
        optimizers[name] = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                                            {"params": other, "weight_decay": 0.0}],
                                           lr=args.lr, momentum=0.9, nesterov=True)
        model.train()
    data_gen = torch.Generator().manual_seed(seed)
    warmup = max(1, int(0.05 * args.steps))
    seconds = {name: 0.0 for name in models}
    losses = {name: [] for name in models}
    order = torch.empty(0, dtype=torch.long)
    for step in range(args.steps):
        if len(order) < args.batch:  # epochs of a fresh permutation; the tail of one epoch starts the next
            order = torch.cat([order, torch.randperm(len(train_x), generator=data_gen)])
        index, order = order[: args.batch], order[args.batch:]
        x = normalise(augment(train_x[index], data_gen))
        y = train_y[index]
        lr = lr_at(step, args.steps, args.lr, warmup)
        for name in (("partial", "zeros") if step % 2 == 0 else ("zeros", "partial")):
            model, optimizer = models[name], optimizers[name]
            for group in optimizer.param_groups:
                group["lr"] = lr
            start = time.perf_counter()
            loss = F.cross_entropy(model(pixel_values=x).logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seconds[name] += time.perf_counter() - start
            losses[name].append(loss.item())
        if (step + 1) % max(1, args.steps // 5) == 0:
            print(f"seed {seed} step {step + 1}/{args.steps}: " + "  ".join(
                f"{n} loss {statistics.mean(losses[n][-20:]):.3f}" for n in models), flush=True)
    result = {"seed": seed}
    for name, model in models.items():
        result[f"{name}_top1"] = top1(model, test[0], test[1], normalise)
        result[f"{name}_final_loss"] = statistics.mean(losses[name][-20:])
        result[f"{name}_seconds_per_step"] = seconds[name] / args.steps
    print(f"seed {seed}: top-1 partial {result['partial_top1']:.4f}  zeros {result['zeros_top1']:.4f}", flush=True)
    return result, models


def publish_partial(model: nn.Module, result: dict, args, mean, std) -> dict:
    """Publish the first seed's PD-ResNet-18 (`adlr-hf publish`), record its test top-1/top-5 with `adlr-hf
    evaluate`'s code (the saved image processor carries the training images' mean/std), and add the side-by-side
    table of this run to its card."""
    import tempfile

    from adlr_hf import PDResNetImageProcessor
    from adlr_hf.evaluation import evaluate_image_model_dir
    from adlr_hf.hub import publish, record_evaluation
    from adlr_hf.hub.card import append_card_section

    out = Path(args.publish)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        PDResNetImageProcessor.for_config(model.config, image_mean=mean.flatten().tolist(),
                                          image_std=std.flatten().tolist()).save_pretrained(tmp)
        publish(tmp, out, force=args.force)
    record = evaluate_image_model_dir(out, args.data, split="test", batch_size=250, progress=False)
    record_evaluation(out, record)
    rows = [f"| {r['seed']} | {r['partial_top1']:.4f} | {r['zeros_top1']:.4f} |" for r in result["runs"]]
    section = "\n".join([
        "", "## Partial vs zero padding (measured side by side)", "",
        f"`scripts/bench/pd_resnet_cifar.py`: this PD-ResNet-18 (seed {result['runs'][0]['seed']}) and a ResNet-18 "
        "with zero padding, trained from the same initial weights on the same batches for the same "
        f"{args.steps} steps (batch {args.batch}, {result['epochs']:.1f} epochs of the {result['train_images']:,} "
        "training images of the CIFAR-10 JPEG subset), CIFAR stem, base width "
        f"{args.base_width}; top-1 on the subset's {result['test_images']:,} test images:", "",
        "| seed | PD-ResNet-18 (partial padding) | ResNet-18 (zero padding) |", "|---|---|---|", *rows,
        f"| mean | {result['partial_top1_mean']:.4f} | {result['zeros_top1_mean']:.4f} |", "",
        f"Ratio partial / zeros: {result['ratio']:.4f}; partial padding better in {result['partial_wins']} seeds.", ""])
    append_card_section(out, section)
    print(f"published {out} (top-1 by adlr-hf evaluate: {record['metrics']['top1']:.4f})", flush=True)
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="image folder with train/ and test/ class folders")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per network and seed (default 200)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--base-width", type=int, default=8, help="channels of the first stage (default 8)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--publish", default=None, metavar="OUT_DIR",
                        help="publish the first seed's PD-ResNet-18 here, with its evaluation and this comparison in "
                             "the model card")
    parser.add_argument("--force", action="store_true", help="with --publish: replace a non-empty OUT_DIR")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "test").is_dir():
        parser.error(f"--data {data} needs train/ and test/ class folders (the CIFAR-10 JPEG subset)")
    for name in ("steps", "batch", "base_width", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    train_x, train_y, names = load_split(data, "train")
    test_x, test_y, test_names = load_split(data, "test")
    if names != test_names:
        parser.error(f"train and test class folders differ: {names} vs {test_names}")
    print(f"data: {len(train_x)} train / {len(test_x)} test images, {len(names)} classes "
          f"({time.perf_counter() - started:.1f} s to decode)", flush=True)
    runs, first = [], None
    for seed in args.seeds:
        run, models = run_seed(seed, args, (train_x, train_y), (test_x, test_y), names)
        runs.append(run)
        if first is None:
            first = models["partial"]
    partial = [r["partial_top1"] for r in runs]
    zeros = [r["zeros_top1"] for r in runs]
    wins = sum(p > z for p, z in zip(partial, zeros))
    result = {
        "bench": "pd_resnet_cifar",
        "ratio": statistics.mean(partial) / statistics.mean(zeros),
        "meaning": "mean test top-1 of PD-ResNet-18 / of ResNet-18 with zero padding (same seeds, same steps); "
                   "> 1: partial padding helps",
        "partial_top1": partial, "zeros_top1": zeros,
        "partial_top1_mean": statistics.mean(partial), "zeros_top1_mean": statistics.mean(zeros),
        "partial_top1_std": statistics.stdev(partial) if len(partial) > 1 else None,
        "zeros_top1_std": statistics.stdev(zeros) if len(zeros) > 1 else None,
        "partial_wins": f"{wins}/{len(runs)}",
        "runs": runs, "steps": args.steps, "batch": args.batch, "epochs": args.steps * args.batch / len(train_x),
        "base_width": args.base_width, "stem": "3x3 stride 1, no max-pool (CIFAR)", "seeds": args.seeds,
        "train_images": len(train_x), "test_images": len(test_x), "threads": args.threads,
        "wall_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }
    print(f"top-1 over {len(runs)} seed(s): PD-ResNet-18 {result['partial_top1_mean']:.4f}  ResNet-18 (zeros) "
          f"{result['zeros_top1_mean']:.4f}  ratio {result['ratio']:.4f}  partial better in {wins}/{len(runs)}",
          flush=True)
    if args.publish:
        mean, std = channel_stats(train_x)
        record = publish_partial(first, result, args, mean, std)
        result["published"] = {"folder": str(Path(args.publish).resolve()), "evaluate_top1": record["metrics"]["top1"],
                               "evaluate_top5": record["metrics"]["top5"]}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
