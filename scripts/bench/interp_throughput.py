"""Interpolated frames per second of Super SloMo (the reference's width, arXiv 1906.05928 / 1712.00080) beside the
frames per second of the SDC-Net predictor (arXiv 1811.00684, the released flow-only SDCNet2D with its OpenCV DIS
input flows) on the same inputs, forward only, batch 1, at 256×256 and at 480×270: a systems number for the model
card, measured side by side in one run (the machine is shared: compare the ratio, not the absolute rates).

    ratio = Super SloMo interpolated frames/s / SDC-Net predicted frames/s, at 480×270   (> 1: interpolation is faster)

Both models read two frames and produce one (Super SloMo at t = 0.5), through
`adlr_hf.tasks.video_data.measure_frame_throughput` (the probe `adlr-hf publish` uses): the median of --runs timed
forwards after one warm-up, random smooth frames. 480×270 is not a multiple of 64: both video processors pad it to
512×320 before their models (as `adlr-hf evaluate` and the pipelines do), so both run on 512×320 frames. Super SloMo
runs with flow_scale 1 (the reference's default) and 2 (its SlowFlow / Sintel setting: the flow net sees half-size
frames). No goal beyond reporting.

Measured with the defaults (3 runs; 9 s of timing, 15 s wall on 2 CPU cores, float32):

    frames/s                          256×256    480×270 (run at 512×320)
    Super SloMo, flow_scale 1           2.91        1.18
    Super SloMo, flow_scale 2           4.47        1.92
    SDC-Net (SDCNet2D + DIS flows)     42.90       21.39
    ratio (Super SloMo fs1 / SDC-Net)   0.068       0.055

Super SloMo (38.8 M parameters) runs both of its U-Nets at the input resolution, with 7×7 and 5×5 convolutions at
full and half size; SDC-Net (9.7 M) starts with a stride-2 convolution and its DIS flows are cheap, so it predicts a
frame about 15-18 times faster on CPU. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

SIZES = {"256x256": (256, 256), "480x270": (270, 480)}


def padded(size: tuple[int, int], divisor: int) -> tuple[int, int]:
    return tuple(math.ceil(v / divisor) * divisor for v in size)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per model and size (default 3)")
    parser.add_argument("--base-width", type=int, default=32, help="Super SloMo's first-level channels (default 32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.base_width < 1 or args.threads < 1:
        parser.error("--runs, --base-width and --threads must be >= 1")
    torch.set_num_threads(args.threads)

    from adlr_hf import (CyclicInterpForFrameInterpolation, CyclicInterpVideoProcessor, SDCNetForFramePrediction,
                         SDCNetVideoProcessor, get_config)
    from adlr_hf.hub.systems import machine_description
    from adlr_hf.tasks.video_data import measure_frame_throughput

    started = time.perf_counter()
    torch.manual_seed(0)
    models = {
        "super_slomo": CyclicInterpForFrameInterpolation(get_config("cyclic-interp", base_width=args.base_width)),
        "super_slomo_fs2": CyclicInterpForFrameInterpolation(get_config("cyclic-interp-fs2",
                                                                        base_width=args.base_width)),
        "sdcnet": SDCNetForFramePrediction(get_config("sdcnet2d")),
    }
    divisors = {"super_slomo": CyclicInterpVideoProcessor.for_config(models["super_slomo"].config).size_divisor,
                "super_slomo_fs2": CyclicInterpVideoProcessor.for_config(models["super_slomo_fs2"].config)
                .size_divisor,
                "sdcnet": SDCNetVideoProcessor.for_config(models["sdcnet"].config).size_divisor}
    forward = {"super_slomo": {"timesteps": [0.5]}, "super_slomo_fs2": {"timesteps": [0.5]}, "sdcnet": {}}
    results = {}
    for label, size in SIZES.items():
        results[label] = {}
        for name, model in models.items():
            shape = padded(size, divisors[name])
            model.to(args.device).eval()
            measured = measure_frame_throughput(model, shape, runs=args.runs, **forward[name])
            results[label][name] = {"frames_per_second": measured["frames_per_second"], "input": list(shape),
                                    "seconds": measured["seconds"]}
            print(f"{label} (run at {shape[1]}x{shape[0]}) {name:<16} {measured['frames_per_second']:8.3f} frames/s",
                  flush=True)
    rates = {label: {name: r["frames_per_second"] for name, r in row.items()} for label, row in results.items()}
    result = {
        "bench": "interp_throughput",
        "ratio": rates["480x270"]["super_slomo"] / rates["480x270"]["sdcnet"],
        "meaning": "Super SloMo (flow_scale 1) interpolated frames/s / SDC-Net (SDCNet2D + OpenCV DIS flows) predicted "
                   "frames/s on the same 480x270 input (padded to 512x320), forward only, batch 1; > 1: faster",
        "ratio_256": rates["256x256"]["super_slomo"] / rates["256x256"]["sdcnet"],
        "ratio_fs2_480x270": rates["480x270"]["super_slomo_fs2"] / rates["480x270"]["sdcnet"],
        "frames_per_second": rates, "details": results,
        "parameters": {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()},
        "machine": machine_description(torch.device(args.device)),
        "runs": args.runs, "threads": args.threads, "base_width": args.base_width,
        "wall_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
