"""Next-frame prediction quality of a saved video model on clips, as SDC-Net's `main.py` evaluates (arXiv 1811.00684;
NVIDIA/semantic-segmentation branch `sdcnet`: PSNR, SSIM (Gaussian-weighted) and IE, the mean over pixels of the RGB
error norm, per predicted frame, averaged), with the copy-last-frame baseline scored on the same frames.

    from adlr_hf.evaluation.next_frame_eval import evaluate_next_frame_model_dir
    evaluate_next_frame_model_dir("runs/sdc/model", "video-frames/")
    # {"task": "next-frame", "model", "data", "settings", "metrics": {"psnr", "ssim", "ie", "copy_last_psnr", ...,
    #  "num_frames", "num_clips", "per_clip": {clip: {...}}}}

The command line is `adlr-hf evaluate MODEL_DIR --task next-frame --data PATH [--frame-stride N]
[--max-windows-per-clip N]`.

Every window of T + 1 consecutive frames (starting every `frame_stride` frames) is one prediction: the model sees
the full frames of the first T (padded by the saved video processor, predictions cropped back) and predicts the last.
Predictions are clamped and rounded to 8 bits before scoring. A reconstruction model also reads the target (it
reconstructs rather than predicts; `settings.reconstruction` says so). Under a launcher the windows are dealt over
the data-parallel ranks (the model may be tensor-parallel) and every rank returns the same metrics.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from ..checks import check_int
from .data_parallel import gather_records, rank_share, shows_progress

__all__ = ["NEXT_FRAME_TASK", "evaluate_next_frame", "evaluate_next_frame_model_dir"]

NEXT_FRAME_TASK = "next-frame"
METRICS = ("psnr", "ssim", "ie", "copy_last_psnr", "copy_last_ssim", "copy_last_ie")


def _spread(rows: list[int], limit: int | None) -> list[int]:
    if limit is None or len(rows) <= limit:
        return rows
    return [rows[round(i * (len(rows) - 1) / max(1, limit - 1))] for i in range(limit)]


def _mean(records: list[dict]) -> dict:
    return {key: sum(r[key] for r in records) / len(records) for key in METRICS}


@torch.no_grad()
def evaluate_next_frame(model, processor, data, frame_stride: int = 1, batch_size: int = 8,
                        max_windows_per_clip: int | None = None, progress: bool = True) -> dict:
    """PSNR / SSIM / IE of `model`'s next-frame predictions on the clips under `data`, and of copying the last
    frame; per clip and over every predicted frame."""
    from ..data.frames import load_frame_windows, read_window
    from ..tasks.next_frame import frame_metrics

    check_int("frame_stride", frame_stride, 1)
    check_int("batch_size", batch_size, 1)
    if max_windows_per_clip is not None:
        check_int("max_windows_per_clip", max_windows_per_clip, 1)
    config = model.config
    window = config.sequence_length + 1
    windows = load_frame_windows(data, window=window, stride=frame_stride)
    by_clip = defaultdict(list)
    for row, clip in enumerate(windows["clip"]):
        by_clip[clip].append(row)
    chosen = [row for rows in by_clip.values() for row in _spread(rows, max_windows_per_clip)]
    mine = rank_share(chosen)
    # Batches hold windows of one clip (one frame size).
    batches, current = [], []
    for row in mine:
        if current and (len(current) == batch_size or windows[current[0]]["clip"] != windows[row]["clip"]):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    records = []
    try:
        for rows in tqdm(batches, desc="evaluate next-frame", unit="batch", disable=not shows_progress(progress)):
            clips = [torch.from_numpy(read_window(windows[row])) for row in rows]  # (T+1, H, W, 3) uint8
            inputs = processor([list(clip.numpy()) for clip in clips], return_tensors="pt",
                               input_data_format="channels_last")
            frames = inputs["pixel_values_videos"].to(device=device, dtype=dtype)
            height, width = inputs["original_sizes"][0].tolist()
            out = model(pixel_values_videos=frames[:, :-1], labels=frames[:, -1])
            predicted = out.predicted_frame[..., :height, :width]
            target = frames[:, -1, :, :height, :width]
            values = frame_metrics(predicted, target, frames[:, -2, :, :height, :width])
            for i, row in enumerate(rows):
                records.append({"clip": windows[row]["clip"], "first_frame": windows[row]["frame_index"][0],
                                **{key: float(values[key][i]) for key in METRICS}})
    finally:
        model.train(was_training)
    records = gather_records(records)
    if not records:
        raise ValueError(f"no window of {window} frames to evaluate under {data!r}")
    records.sort(key=lambda r: (r["clip"], r["first_frame"]))
    per_clip = {}
    for clip in dict.fromkeys(r["clip"] for r in records):
        mine = [r for r in records if r["clip"] == clip]
        per_clip[clip] = {**_mean(mine), "num_frames": len(mine)}
    return {**_mean(records), "num_frames": len(records), "num_clips": len(per_clip), "per_clip": per_clip}


def evaluate_next_frame_model_dir(model_dir, data, frame_stride: int = 1, batch_size: int = 8, tp: int = 1,
                                  max_windows_per_clip: int | None = None, device: str | None = None,
                                  progress: bool = True) -> dict:
    """Load a saved video model (+ its video processor) and score it on the clips under `data`; what
    `adlr-hf evaluate --task next-frame` runs. Inputs are checked before the model is loaded."""
    from ..data.frames import find_clips
    from .loading import load_video_model, video_model_folder

    path = video_model_folder(model_dir)
    check_int("batch_size", batch_size, 1)
    check_int("tp", tp, 1)
    check_int("frame_stride", frame_stride, 1)
    data = os.path.expanduser(os.fspath(data))
    find_clips(data)  # a missing folder, no clips, or an unreadable video fails here
    model, processor = load_video_model(path, tp, device)
    metrics = evaluate_next_frame(model, processor, data, frame_stride, batch_size, max_windows_per_clip, progress)
    settings = {"frame_stride": frame_stride, "max_windows_per_clip": max_windows_per_clip, "tp": tp,
                "window": model.config.sequence_length + 1,
                "reconstruction": bool(getattr(model.config, "reconstruction", False)),
                "flow_source": getattr(model.config, "flow_source", None)}
    return {"task": NEXT_FRAME_TASK, "model": path, "data": data, "split": "test", "settings": settings,
            "metrics": metrics}


def run_from_args(args) -> dict:
    """`adlr-hf evaluate --task next-frame`."""
    return evaluate_next_frame_model_dir(args.model_dir, args.data, frame_stride=args.frame_stride,
                                         batch_size=args.batch_size, tp=args.tp,
                                         max_windows_per_clip=args.max_windows_per_clip)
