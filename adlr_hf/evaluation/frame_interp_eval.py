"""Frame-interpolation quality of a saved model on an evaluation set, as NVIDIA/unsupervised-video-interpolation's
`eval.py` scores it (Reda et al., arXiv 1906.05928): PSNR, SSIM (Gaussian-weighted) and IE (mean over pixels of the
RGB error norm) of every interpolated frame after cropping away the padding, per in-between frame index, per clip
and overall, beside frame averaging ((1 - t) I0 + t I1) on the same frames.

    from adlr_hf.evaluation.frame_interp_eval import evaluate_frame_interpolation_model_dir
    evaluate_frame_interpolation_model_dir("runs/uvi/model", "vfi-davis-dev/", layout="triplets")
    # {"task": "frame-interpolation", "model", "data", "settings", "metrics": {"psnr", "ssim", "ie",
    #  "frame_average_psnr", ..., "num_frames", "num_samples", "num_clips", "per_clip", "per_index", "frames"}}

The command line is `adlr-hf evaluate MODEL_DIR --task frame-interpolation --data PATH --layout
{triplets,slowflow,sintel} [--num-interp N]` (layouts: `adlr_hf.data.interp_layouts`).

The model sees the two input frames zero-padded by the saved video processor (the reference's padding to multiples
of 64) and interpolates every in-between time of the sample in one call; predictions are cropped to the frame size,
clamped to [0, 255] and rounded to 8 bits before scoring (the reference casts with `astype(np.uint8)`, which
truncates and wraps instead: scores differ slightly). Under a launcher the samples are dealt over the data-parallel
ranks (the model may be tensor-parallel) and every rank returns the same metrics.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from ..checks import check_int
from .data_parallel import gather_records, rank_share, shows_progress

__all__ = ["FRAME_INTERP_TASK", "evaluate_frame_interpolation", "evaluate_frame_interpolation_model_dir"]

FRAME_INTERP_TASK = "frame-interpolation"
METRICS = ("psnr", "ssim", "ie", "frame_average_psnr", "frame_average_ssim", "frame_average_ie")


def _mean(records: list[dict]) -> dict:
    return {key: sum(r[key] for r in records) / len(records) for key in METRICS}


@torch.no_grad()
def evaluate_frame_interpolation(model, processor, data, layout: str = "triplets", num_interp: int | None = None,
                                 batch_size: int = 4, progress: bool = True) -> dict:
    """PSNR / SSIM / IE of `model`'s interpolated frames on the evaluation set under `data` in `layout`, and of frame
    averaging; per frame, per in-between index, per clip and overall."""
    from ..data.interp_layouts import find_interp_samples, read_sample_frames
    from ..tasks.video_interpolation import interpolation_metrics

    check_int("batch_size", batch_size, 1)
    samples = find_interp_samples(data, layout, num_interp)
    if not samples:
        raise ValueError(f"no {layout} samples under {data!r}")
    mine = rank_share(list(enumerate(samples)))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    records = []

    def score(group) -> None:
        """One forward for samples of one frame size and one set of timesteps."""
        arrays = [frames for _, _, frames in group]
        height, width = arrays[0].shape[1:3]
        times = list(group[0][1].timesteps)
        batch = processor([list(a[:2]) for a in arrays], return_tensors="pt", input_data_format="channels_last")
        frames = batch["pixel_values_videos"].to(device=device, dtype=dtype)
        predicted = model.interpolate(frames, timesteps=times)[..., :height, :width]
        t = torch.tensor(times, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
        for (number, sample, array), prediction in zip(group, predicted):
            pixels = torch.from_numpy(array).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
            values = interpolation_metrics(prediction, pixels[2:], (1 - t) * pixels[0] + t * pixels[1])
            for i, time in enumerate(times):
                records.append({"clip": sample.clip, "sample": number, "index": i + 1, "t": time,
                                **{key: float(values[key][i]) for key in METRICS}})

    try:
        group = []
        for number, sample in tqdm(mine, desc="evaluate frame-interpolation", unit="sample",
                                   disable=not shows_progress(progress)):
            frames = read_sample_frames(sample.inputs + sample.targets)  # (2 + N, H, W, 3) uint8, one size
            if group and (len(group) == batch_size or group[0][2].shape != frames.shape
                          or group[0][1].timesteps != sample.timesteps):
                score(group)
                group = []
            group.append((number, sample, frames))
        if group:
            score(group)
    finally:
        model.train(was_training)
    records = gather_records(records)
    records.sort(key=lambda r: (r["sample"], r["index"]))
    per_clip, per_index = defaultdict(list), defaultdict(list)
    for record in records:
        per_clip[record["clip"]].append(record)
        per_index[record["index"]].append(record)
    return {**_mean(records), "num_frames": len(records), "num_samples": len(samples), "num_clips": len(per_clip),
            "per_clip": {clip: {**_mean(rows), "num_frames": len(rows)} for clip, rows in per_clip.items()},
            "per_index": {str(index): {"t": rows[0]["t"], **_mean(rows), "num_frames": len(rows)}
                          for index, rows in sorted(per_index.items())},
            "frames": records}


def evaluate_frame_interpolation_model_dir(model_dir, data, layout: str = "triplets", num_interp: int | None = None,
                                           batch_size: int = 4, tp: int = 1, device: str | None = None,
                                           progress: bool = True) -> dict:
    """Load a saved interpolation model (+ its video processor) and score it on the set under `data`; what
    `adlr-hf evaluate --task frame-interpolation` runs. Inputs and the layout's files are checked before the model
    is loaded."""
    from ..data.interp_layouts import DEFAULT_NUM_INTERP, find_interp_samples
    from .loading import load_video_model, video_model_folder

    path = video_model_folder(model_dir)
    check_int("batch_size", batch_size, 1)
    check_int("tp", tp, 1)
    data = os.path.expanduser(os.fspath(data))
    find_interp_samples(data, layout, num_interp)  # missing folders, files or frames fail here
    model, processor = load_video_model(path, tp, device)
    metrics = evaluate_frame_interpolation(model, processor, data, layout, num_interp, batch_size, progress)
    settings = {"layout": layout, "num_interp": DEFAULT_NUM_INTERP[layout] if num_interp is None else num_interp,
                "tp": tp, "flow_scale": getattr(model.config, "flow_scale", None),
                "padding": f"zeros to multiples of {processor.size_divisor}", "scoring": "clamped, rounded to uint8"}
    return {"task": FRAME_INTERP_TASK, "model": path, "data": data, "split": "test", "settings": settings,
            "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task frame-interpolation`."""
    return evaluate_frame_interpolation_model_dir(args.model_dir, args.data, layout=args.layout,
                                                  num_interp=args.num_interp, batch_size=args.batch_size, tp=args.tp)
