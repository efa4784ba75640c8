"""Super SloMo trained three ways with the same seed and step budget on the staged frames of
../shared/data/video-frames (two real clips) and scored on the real DAVIS triplets of ../shared/data/vfi-davis-dev
beside frame averaging: (a) supervised (the middle frame of each triplet is the target), (b) cycle consistency only
(the same triplets, the middle frame never used as a target), (c) cycle + pseudo-supervision starting from (a) with
(a) as the frozen teacher (the paper's fine-tuning setting, arXiv 1906.05928).

    ratio = DAVIS PSNR of (c) / PSNR of frame averaging ((I0 + I1) / 2)   (> 1: (c) beats averaging)

Goals (the issue's): every trained model beats frame averaging in PSNR, and (c) is at least as good as (b).

How: each model trains through `python -m adlr_hf.train` (one process, Accelerate engine, in this interpreter):
`--regime supervised` (sample_rate 1: frames s, s+1, s+2), `--regime cycle` (sample_rate 0: the same consecutive
triplets) and `--model <a>/model --regime cycle-ps` (the teacher defaults to the folder the run starts from), all
with the reference's optimizer settings (Adam, weight decay 1e-3, no gradient clipping) at --lr with a cosine
schedule, batch --batch of random --crop crops, time reversal with probability 1/2, no perceptual term (no VGG16
weights are available offline). The clips are downscaled by --scale first (default 1/2: 480×253 and 480×270, the
size of the larger DAVIS triplets). Evaluation: `adlr-hf evaluate --task frame-interpolation --layout triplets` on the
5 DAVIS triplets (inputs zero-padded to multiples of 64, predictions cropped, clamped and rounded to 8 bits; PSNR,
Gaussian SSIM, IE). Before training, the seeded model scores far below averaging (its flows are random).
`--publish OUT` publishes (c) with `adlr-hf publish`, records its DAVIS evaluation in the card's model-index and
appends this run's table to the card.

Measured with the defaults (base width 8: 2.4 M parameters; 500 steps of batch 4 at 64×64, lr 1e-3; 308 s wall on 2
shared CPU cores for seed 0, 259 s for seed 1), DAVIS PSNR (dB) / SSIM / IE:

    model                                       seed 0                     seed 1
    (a) supervised                              21.619 / 0.6866 / 19.89    21.892 / 0.6806 / 19.72
    (b) cycle consistency only                  21.622 / 0.6736 / 20.60    21.637 / 0.6681 / 20.69
    (c) cycle + pseudo-supervision from (a)     21.939 / 0.6912 / 19.09    21.975 / 0.6869 / 19.30
    frame averaging                             21.586 / 0.6652 / 20.81    21.586 / 0.6652 / 20.81
    untrained (seeded) model                    19.821 / 0.6491 / 24.20    20.695 / 0.6509 / 23.08
    ratio ((c) / frame averaging PSNR)          1.016                      1.018

Both goals hold for both seeds, by small margins: (b) beats frame averaging by 0.04-0.05 dB and (a) by 0.03-0.31 dB
(at this budget they have learnt little more than a visibility-weighted blend), (c) beats averaging by 0.35-0.39 dB
and (b) by 0.32-0.34 dB, with the best SSIM and IE of all rows. Two seeds say little about the spread. JSON on the
last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_DATA, DEFAULT_EVAL = SHARED / "video-frames", SHARED / "vfi-davis-dev"
REGIMES = {"supervised": "(a) supervised", "cycle": "(b) cycle consistency only",
           "cycle-ps": "(c) cycle + pseudo-supervision from (a)"}


def stage_frames(root: Path, scale: float, out: Path) -> Path:
    """Every clip under `root` downscaled by `scale` (area averaging) into frame folders under `out`."""
    import numpy as np
    from PIL import Image

    from adlr_hf.data.frames import _read_image, find_clips, read_video_frames

    for clip in find_clips(root):
        arrays = [_read_image(f) for f in clip.files] if clip.kind == "frames" else \
            list(read_video_frames(clip.source, range(clip.num_frames)))
        folder = out / clip.name
        folder.mkdir(parents=True)
        for i, array in enumerate(arrays):
            image = Image.fromarray(np.asarray(array))
            if scale != 1.0:
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BOX)
            image.save(folder / f"{i:05d}.png")
    return out


def train(regime: str, model: str, data: Path, out: Path, args) -> dict:
    from adlr_hf.train import run
    from adlr_hf.training.args import build_parser

    argv = ["--model", model, "--regime", regime, "--data", str(data), "--out", str(out), "--engine", "accelerate",
            "--steps", str(args.steps), "--micro-batch-size", str(args.batch), "--crop-size", str(args.crop),
            "--lr", str(args.lr), "--weight-decay", "1e-3", "--clip-grad", "0", "--eval-fraction", "0",
            "--seed", str(args.seed), "--sample-rate", "1" if regime == "supervised" else "0", "--no-progress",
            "--log-every", str(max(1, args.steps // 10))]
    if model.startswith("cyclic-interp"):
        argv += ["--set", f"base_width={args.base_width}"]
    started = time.perf_counter()
    info = run(build_parser().parse_args(argv))
    info["wall_seconds"] = round(time.perf_counter() - started, 1)
    return info


def evaluate(model_dir: Path, eval_data: Path) -> dict:
    from adlr_hf.evaluation.frame_interp_eval import evaluate_frame_interpolation_model_dir

    return evaluate_frame_interpolation_model_dir(model_dir, eval_data, layout="triplets", progress=False)


def untrained(args, folder: Path) -> Path:
    """The seeded, untrained model of the same width (the starting point of (a) and (b))."""
    from adlr_hf import CyclicInterpForFrameInterpolation, CyclicInterpVideoProcessor, get_config

    torch.manual_seed(args.seed)
    model = CyclicInterpForFrameInterpolation(get_config("cyclic-interp-tiny", base_width=args.base_width))
    model.save_pretrained(folder)
    CyclicInterpVideoProcessor.for_config(model.config).save_pretrained(folder)
    return folder


def table_rows(results: dict) -> list[tuple[str, dict]]:
    rows = [(REGIMES[r], results[r]["metrics"]) for r in REGIMES]
    averaging = results["supervised"]["metrics"]
    rows.append(("frame averaging", {k: averaging[f"frame_average_{k}"] for k in ("psnr", "ssim", "ie")}))
    rows.append(("untrained (seeded) model", results["untrained"]["metrics"]))
    return rows


def publish(run_dir: Path, results: dict, args) -> dict:
    """`adlr-hf publish` of (c), its DAVIS evaluation in the card's model-index, and this run's table in the card."""
    from adlr_hf.hub import publish as publish_folder
    from adlr_hf.hub import record_evaluation
    from adlr_hf.hub.card import append_card_section

    out = Path(args.publish)
    publish_folder(run_dir, out, force=args.force)
    record = evaluate(out, Path(args.eval_data))
    record_evaluation(out, record)
    lines = ["", "## Supervised vs cycle-consistent vs cycle + pseudo-supervised (measured side by side)", "",
             f"`scripts/bench/interp_quality.py`: this model (c) and two others of the same width "
             f"({args.base_width}), trained with the same seed ({args.seed}) and step budget ({args.steps} steps of "
             f"{args.batch} random {args.crop}×{args.crop} crops, lr {args.lr:g}, cosine) on the staged frames of "
             f"`video-frames` (scaled by {args.scale:g}); (c) starts from (a) and uses it as its frozen teacher. "
             "Scored on the 5 DAVIS triplets of `vfi-davis-dev` (inputs zero-padded to 64, predictions 8-bit):", "",
             "| model | PSNR (dB) | SSIM | IE |", "|---|---|---|---|"]
    lines += [f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['ie']:.2f} |" for name, m in table_rows(results)]
    append_card_section(out, lines)
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="training clips (default ../shared/data/video-frames)")
    parser.add_argument("--eval-data", default=str(DEFAULT_EVAL),
                        help="DAVIS triplets, input/ + gt/ (default ../shared/data/vfi-davis-dev)")
    parser.add_argument("--scale", type=float, default=0.5, help="downscale factor of the training clips (default 0.5)")
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps per model (default 500)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64, help="training crop, a multiple of 32 (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--base-width", type=int, default=8, help="channels of the first U-Net level (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="keep the three runs here (default: a temporary folder)")
    parser.add_argument("--publish", default=None, metavar="OUT_DIR",
                        help="publish (c) here, with its DAVIS evaluation and this comparison in the card")
    parser.add_argument("--force", action="store_true", help="with --publish: replace a non-empty OUT_DIR")
    args = parser.parse_args(argv)
    for name in ("steps", "batch", "crop", "base_width", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.crop % 32:
        parser.error(f"--crop {args.crop} must be a multiple of 32 (the U-Nets pool 5 times)")
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    for path in (args.data, args.eval_data):
        if not Path(path).exists():
            parser.error(f"{path} does not exist")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="interp_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        staged = work / "frames"
        if staged.exists():
            shutil.rmtree(staged)
        stage_frames(Path(args.data), args.scale, staged)
        results, infos = {"untrained": evaluate(untrained(args, work / "untrained"), Path(args.eval_data))}, {}
        for regime in REGIMES:
            start = str(work / "supervised" / "model") if regime == "cycle-ps" else "cyclic-interp-tiny"
            infos[regime] = train(regime, start, staged, work / regime, args)
            results[regime] = evaluate(work / regime / "model", Path(args.eval_data))
            m = results[regime]["metrics"]
            print(f"{REGIMES[regime]}: DAVIS PSNR {m['psnr']:.3f} SSIM {m['ssim']:.4f} IE {m['ie']:.3f} "
                  f"(final training loss {infos[regime]['final_loss']:.3f}, {infos[regime]['wall_seconds']} s)",
                  flush=True)
        print(f"\n{'model':<44} {'PSNR':>8} {'SSIM':>8} {'IE':>8}")
        for name, m in table_rows(results):
            print(f"{name:<44} {m['psnr']:8.3f} {m['ssim']:8.4f} {m['ie']:8.3f}")
        averaging = results["supervised"]["metrics"]["frame_average_psnr"]
        psnr = {regime: results[regime]["metrics"]["psnr"] for regime in REGIMES}
        result = {
            "bench": "interp_quality",
            "ratio": psnr["cycle-ps"] / averaging,
            "meaning": "DAVIS PSNR of (c) cycle + pseudo-supervised from (a) / PSNR of frame averaging; > 1: it "
                       "beats averaging",
            "all_beat_frame_averaging": all(v > averaging for v in psnr.values()),
            "cycle_ps_at_least_cycle": psnr["cycle-ps"] >= psnr["cycle"],
            "davis": {regime: {k: results[regime]["metrics"][k] for k in ("psnr", "ssim", "ie")}
                      for regime in (*REGIMES, "untrained")},
            "frame_averaging": {k: results["supervised"]["metrics"][f"frame_average_{k}"] for k in ("psnr", "ssim",
                                                                                                    "ie")},
            "per_clip_psnr": {regime: {c: v["psnr"] for c, v in results[regime]["metrics"]["per_clip"].items()}
                              for regime in REGIMES},
            "final_loss": {regime: infos[regime]["final_loss"] for regime in REGIMES},
            "train_seconds": {regime: infos[regime]["wall_seconds"] for regime in REGIMES},
            "steps": args.steps, "batch": args.batch, "crop": args.crop, "lr": args.lr, "base_width": args.base_width,
            "scale": args.scale, "seed": args.seed, "threads": args.threads, "perceptual": "off (no VGG16 weights)",
            "wall_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
        }
        if args.publish:
            record = publish(work / "cycle-ps", results, args)
            result["published"] = {"folder": str(Path(args.publish).resolve()),
                                   "evaluate_psnr": record["metrics"]["psnr"]}
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
